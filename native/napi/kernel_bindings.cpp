#include "modules.h"

namespace quanteval::napi {
void init_kernel_bindings(Napi::Env, Napi::Object) {}
}  // namespace quanteval::napi
