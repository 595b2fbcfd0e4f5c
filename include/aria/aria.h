// aria's public API in one include: <aria/aria.h>. These are the entry points aria keeps stable
// within a minor version (README, "Using aria as a library"); every other installed header is there
// because these include it, and may change.
#pragma once

#include "aria/version.h"  // ARIA_VERSION_STRING, aria::kVersion

// Tensors and differentiable ops: Tensor, DType, Device (cpu, cuda:N), the autograd tape, aria::ops.
#include "aria/core/context.h"  // the library's switches (aria::context())
#include "aria/core/device.h"
#include "aria/core/dtype.h"
#include "aria/core/error.h"
#include "aria/core/tensor.h"
#include "aria/core/ops.h"

// GPT-2: configs, Hugging Face folders in and out, forward and LM loss; the byte-level BPE tokenizer;
// the plasticity-gated MLP and the continual model (trunk + task adapters and heads).
#include "aria/model/gpt2_config.h"
#include "aria/model/gpt2.h"
#include "aria/model/tokenizer.h"
#include "aria/model/gated_mlp.h"
#include "aria/model/continual_model.h"

// Training: AdamW and parameter groups, the LM trainer, task data, the continual trainer and its
// method interface (plug-ins), continual-learning metrics.
#include "aria/train/optim/adamw.h"
#include "aria/train/optim/param_groups.h"
#include "aria/train/optim/lm_trainer.h"
#include "aria/train/optim/train_state.h"  // the trainer as state + steps (OptimState, optimizer_step, TrainCallbacks)
#include "aria/train/data/cls_data.h"
#include "aria/train/continual/continual_method.h"
#include "aria/train/continual/continual_trainer.h"
#include "aria/train/continual/continual_steps.h"  // evaluation and consolidation as free functions
#include "aria/train/report/cl_metrics.h"
