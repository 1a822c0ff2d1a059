#include "modules.h"

namespace quanteval::napi {
void init_runtime_bindings(Napi::Env, Napi::Object) {}
}  // namespace quanteval::napi
