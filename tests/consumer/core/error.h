// The consumer project's own core/error.h: a research repository with core/ and model/ folders of its own.
// aria's headers are included as <aria/...> and must never pick this file up in place of aria's.
#pragma once
namespace app {
inline const char* core_error_h() { return "app's core/error.h"; }
}  // namespace app
