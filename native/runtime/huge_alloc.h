// Weight storage on transparent huge pages. A decode step streams every weight byte once; on 4 KiB pages that is a
// TLB miss and page walk per 4 KiB (the read-bandwidth probe, membw.cpp, reads 2 MiB pages and so set a roofline the
// weights could not reach). Buffers of 2 MiB and more are 2 MiB aligned and advised MADV_HUGEPAGE (the kernel's
// "madvise" THP mode); the advice failing just leaves 4 KiB pages. Smaller buffers come from malloc.
// tinyllama-1.1b w4g128a8 decode: 24.3 -> 22.7 ms a step (median of 4 alternating runs).
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace quanteval::rt {

// `bytes` of memory (at least 1), freed with std::free: on 2 MiB pages advised MADV_HUGEPAGE when bytes >= 2 MiB,
// rounded up to whole huge pages so that the tail is one too (the padding is resident: tinyllama-1.1b w4g128:
// 769 MB RSS, 528 MB of it huge pages; posix_memalign of the exact size: 735 MB, 391 MB huge, and decode 22.4 ->
// 25.0 ms a step); else malloc. nullptr when out of memory.
inline void* alloc_maybe_huge(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes >= kHuge) {
    const size_t len = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, len);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
  }
  return std::malloc(bytes ? bytes : 1);
}

template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHuge = size_t(2) << 20;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}

  T* allocate(size_t n) {
    void* p = alloc_maybe_huge(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

// Byte buffer of a weight tensor.
using WeightBytes = std::vector<uint8_t, HugePageAllocator<uint8_t>>;
// A layer's KV-cache codes and scales (SeqCache): a decode step reads them all, like the weights. Decode attention,
// MHA 32 x 128, context 4096, int4, 2 threads, 4 caches in turn: 2.02-2.17 -> 1.85-1.96 ms; fp32 5.09-5.28 -> 4.69-5.05.
template <class T>
using HugeVec = std::vector<T, HugePageAllocator<T>>;

}  // namespace quanteval::rt
