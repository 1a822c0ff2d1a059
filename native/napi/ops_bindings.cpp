#include "modules.h"

namespace quanteval::napi {
void init_ops_bindings(Napi::Env, Napi::Object) {}
}  // namespace quanteval::napi
