// What the kernel sources (kernels/cpu, kernels/cuda), the tests and the programs include: the backend
// interface (kernels/backend.h), which declares every kernel of both backends and the CUDA runtime
// services. core/ includes kernels/backend.h itself and nothing else from kernels/.
#pragma once
#include "aria/kernels/backend.h"
