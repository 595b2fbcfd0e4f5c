// The consumer project's own model/gpt2.h: a research repository with core/ and model/ folders of its own.
// aria's headers are included as <aria/...> and must never pick this file up in place of aria's.
#pragma once
namespace app {
inline const char* model_gpt2_h() { return "app's model/gpt2.h"; }
}  // namespace app
