// Thread-local scratch in a shared library: the address of a thread_local is a __tls_get_addr call (the dynamic TLS
// model of a dlopen-ed addon), and GCC recomputes it at every use rather than keep it in a register, inside hot
// loops too (prefill attention's P·V loop called it once per key, spilling its 8 accumulators around each call).
// tls_once hides the address behind an empty asm: one call per function.
#pragma once

namespace quanteval::detail {

template <class T>
inline T& tls_once(T& v) {
  T* p = &v;
  __asm__("" : "+r"(p));
  return *p;
}

}  // namespace quanteval::detail
