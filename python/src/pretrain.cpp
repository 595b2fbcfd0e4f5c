// aria.pretrain: train a GPT-2 language model from Python (aria pretrain's engine, train_lm).
#include <cmath>
#include <iostream>
#include <optional>
#include <sstream>

#include "bindings.h"
#include "aria/model/gpt2.h"
#include "aria/model/tokenizer.h"
#include "aria/train/optim/lm_trainer.h"

namespace aria::python {

namespace {

// The text of a corpus given as text= or read from corpus= (a path), tokenized.
TokenDataset dataset_of(const std::optional<std::string>& path, const std::optional<std::string>& text,
                        const Gpt2Tokenizer& tok) {
  auto tokenize = [&](const std::string& s) { return tok.encode(s); };
  if (path) return as_input([&] { return load_token_dataset(*path, tokenize); });
  TokenDataset d;
  if (text) d.tokens = tok.encode(*text);
  return d;
}

}  // namespace

void bind_pretrain(py::module_& m) {
  m.def("pretrain",
        [](std::optional<std::string> corpus, std::optional<std::string> text, std::optional<Gpt2Model> model,
           const std::string& preset, std::optional<std::string> val, std::optional<std::string> val_text, int steps,
           int batch, int seq, int grad_accum, double lr, int warmup, double weight_decay, uint64_t seed,
           const std::string& device, bool bf16, std::optional<Gpt2Tokenizer> tokenizer, bool verbose) {
          if (corpus.has_value() == text.has_value()) throw InputError("pretrain: give exactly one of corpus= (a path) and text=");
          if (val && val_text) throw InputError("pretrain: give at most one of val= and val_text=");
          if (steps < 1 || batch < 1 || seq < 1 || grad_accum < 1 || warmup < 0 || lr <= 0 || weight_decay < 0)
            throw InputError("pretrain: steps, batch, seq and grad_accum must be >= 1, warmup >= 0, lr > 0, "
                             "weight_decay >= 0");
          const Device d = device_arg(device);
          if (bf16 && !d.is_cuda()) throw InputError("pretrain: bf16=True needs a CUDA device (got " + d.str() + ")");
          Gpt2Model g = model ? model->to(d) : as_input([&] { return gpt2_random(gpt2_preset(preset), seed, d); });
          if (seq > g.config.n_positions)
            throw InputError("pretrain: seq = " + std::to_string(seq) + " exceeds the model's n_positions = " +
                             std::to_string(g.config.n_positions));
          const Gpt2Tokenizer tok = tokenizer ? *tokenizer : as_input([] { return load_tokenizer_for(""); });
          LmTrainConfig cfg;
          cfg.steps = steps;
          cfg.batch_size = batch;
          cfg.seq_len = seq;
          cfg.grad_accum = grad_accum;
          cfg.lr = lr;
          cfg.warmup_steps = warmup;
          cfg.weight_decay = weight_decay;
          cfg.seed = seed;
          cfg.bf16 = bf16;
          cfg.verbose = verbose;
          LmTrainResult r;
          {
            py::gil_scoped_release nogil;
            const TokenDataset train = dataset_of(corpus, text, tok);
            const TokenDataset vset = dataset_of(val, val_text, tok);
            std::ostringstream quiet;
            if (train.size() < uint64_t(seq) + 1)
              throw InputError("pretrain: the corpus has " + std::to_string(train.size()) + " tokens; seq = " +
                               std::to_string(seq) + " needs at least " + std::to_string(seq + 1));
            r = train_lm(g, train, vset.empty() ? nullptr : &vset, cfg, verbose ? std::cout : quiet);
          }
          py::dict result;
          result["losses"] = r.losses;
          result["grad_norms"] = r.grad_norms;
          result["lrs"] = r.lrs;
          py::list vl;
          for (const auto& [step, loss] : r.val_losses) vl.append(py::make_tuple(step, loss));
          result["val_losses"] = vl;
          result["final_val_loss"] = std::isfinite(r.final_val_loss) ? py::cast(r.final_val_loss) : py::none();
          result["tokens_per_second"] = r.tokens_per_second;
          result["train_seconds"] = r.train_seconds;
          return py::make_tuple(std::move(g), result);
        },
        py::kw_only(), py::arg("corpus") = py::none(), py::arg("text") = py::none(), py::arg("model") = py::none(),
        py::arg("preset") = "small-cpu", py::arg("val") = py::none(), py::arg("val_text") = py::none(),
        py::arg("steps") = 200, py::arg("batch") = 8, py::arg("seq") = 128, py::arg("grad_accum") = 1,
        py::arg("lr") = 6e-4, py::arg("warmup") = 20, py::arg("weight_decay") = 0.1, py::arg("seed") = 1337,
        py::arg("device") = "cpu", py::arg("bf16") = false, py::arg("tokenizer") = py::none(),
        py::arg("verbose") = false,
        "Trains a GPT-2 language model (from model=, else a random preset) on a corpus file or text as `aria "
        "pretrain` does; returns (model, {'losses', 'val_losses', 'final_val_loss', 'tokens_per_second', ...})");
}

}  // namespace aria::python
