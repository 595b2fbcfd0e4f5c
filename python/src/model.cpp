// GPT-2 models, the tokenizer, score and generate (aria score / aria generate from Python).
//
// A GPT2 object is the engine's Gpt2Model: a set of tensor handles, so named_parameters() returns the
// live parameters (numpy views of them share memory). load_gpt2 records the folder it read in
// `source`, where score and generate find the tokenizer when none is given (as the CLI does).
#include <cmath>
#include <optional>

#include "bindings.h"
#include "foreign_storage.h"
#include "aria/core/autograd.h"
#include "aria/core/rng.h"
#include "aria/model/gpt2.h"
#include "aria/model/lm_score.h"
#include "aria/model/sampling.h"
#include "aria/model/tokenizer.h"

namespace aria::python {

namespace {

py::dict config_dict(const Gpt2Config& c) {
  py::dict d;
  d["vocab_size"] = c.vocab_size;
  d["n_positions"] = c.n_positions;
  d["n_embd"] = c.n_embd;
  d["n_layer"] = c.n_layer;
  d["n_head"] = c.n_head;
  d["layer_norm_epsilon"] = c.layer_norm_epsilon;
  d["activation_function"] = c.activation_function;
  return d;
}

// The tokenizer given, else the one of the folder the model was loaded from.
Gpt2Tokenizer tokenizer_for(const py::object& model, const std::optional<Gpt2Tokenizer>& tok, const char* who) {
  if (tok) return *tok;
  if (py::hasattr(model, "source") && !model.attr("source").is_none()) {
    const std::string dir = model.attr("source").cast<std::string>();
    return as_input([&] { return load_tokenizer_for(dir); });
  }
  throw InputError(std::string(who) + ": this model was not loaded from a folder: pass tokenizer=aria.Tokenizer...");
}

Tensor ids_arg(const py::object& ids, Device device) {
  py::module_ aria = py::module_::import("aria._core");
  Tensor t = py::isinstance<Tensor>(ids) ? ids.cast<Tensor>() : aria.attr("tensor")(ids, "int32").cast<Tensor>();
  if (t.dtype() != DType::I32) throw InputError("token ids must be int32, got " + std::string(dtype_name(t.dtype())));
  if (t.dim() == 1) t = t.reshape({1, t.size(0)});
  return t.to(device);
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<Gpt2Model>(m, "GPT2", py::dynamic_attr(),
                        "A GPT-2 (Hugging Face parameter names, lm head tied to wte).")
      .def_property_readonly("config", [](const Gpt2Model& g) { return config_dict(g.config); })
      .def_property_readonly("device", [](const Gpt2Model& g) { return g.device().str(); })
      .def_property_readonly("dtype", [](const Gpt2Model& g) { return std::string(dtype_name(g.dtype())); })
      .def_property_readonly("num_parameters", &Gpt2Model::num_parameters)
      .def("named_parameters", [](const Gpt2Model& g) {
             py::dict d;
             for (const auto& [name, t] : g.named_parameters()) d[py::str(name)] = t;
             return d;
           }, "The live parameters by Hugging Face name (no copies)")
      .def("to", [](const Gpt2Model& g, const std::string& where) {
             py::gil_scoped_release nogil;
             if (where == "cpu" || where == "auto" || where.rfind("cuda", 0) == 0) return g.to(device_arg(where));
             return as_input([&] { return g.to(dtype_arg(where)); });
           }, py::arg("device_or_dtype"), "A deep copy on a device or in a float dtype")
      .def("save", [](const Gpt2Model& g, const std::string& dir) {
             py::gil_scoped_release nogil;
             gpt2_save(g, dir);
           }, py::arg("dir"), "Writes DIR/config.json + DIR/model.safetensors (transformers' layout, float32)")
      .def("hidden", [](const Gpt2Model& g, const py::object& ids) {
             Tensor x = ids_arg(ids, g.device());
             return as_input([&] { return gpt2_hidden(g, x); });
           }, py::arg("ids"), "Hidden states after ln_f [B, T, C] for int32 ids [B, T]")
      .def("logits", [](const Gpt2Model& g, const py::object& ids) {
             Tensor x = ids_arg(ids, g.device());
             return as_input([&] { return gpt2_logits(g, gpt2_hidden(g, x)); });
           }, py::arg("ids"), "Logits [B, T, V] for int32 ids [B, T]")
      .def("lm_loss", [](const Gpt2Model& g, const py::object& ids, const py::object& targets) {
             Tensor x = ids_arg(ids, g.device()), y = ids_arg(targets, g.device());
             return as_input([&] { return gpt2_lm_loss(g, x, y); });
           }, py::arg("ids"), py::arg("targets"), "Mean next-token cross-entropy (targets -100 ignored)")
      .def("set_requires_grad", &Gpt2Model::set_requires_grad)
      .def("__repr__", [](const Gpt2Model& g) {
        return "aria.GPT2(" + std::to_string(g.config.n_layer) + " layers, d=" + std::to_string(g.config.n_embd) +
               ", " + std::to_string(g.num_parameters()) + " parameters, " + g.device().str() + ")";
      });

  m.def("load_gpt2", [](const std::string& dir, const std::string& device, bool allow_nonfinite) {
          const Device d = device_arg(device);
          Gpt2LoadOptions opt;
          opt.allow_nonfinite = allow_nonfinite;
          Gpt2Model g;
          {
            py::gil_scoped_release nogil;
            g = as_input([&] { return gpt2_load(dir, d, opt); });
          }
          py::object obj = py::cast(std::move(g));
          obj.attr("source") = dir;
          return obj;
        }, py::arg("dir"), py::arg("device") = "cpu", py::arg("allow_nonfinite") = false,
        "Loads a Hugging Face GPT-2 folder (config.json + model.safetensors)");
  m.def("gpt2_random", [](const std::string& preset, uint64_t seed, const std::string& device) {
          const Device d = device_arg(device);
          return as_input([&] { return gpt2_random(gpt2_preset(preset), seed, d); });
        }, py::arg("preset") = "tiny", py::arg("seed") = 0, py::arg("device") = "cpu",
        "A randomly initialised GPT-2 of a preset: tiny, small-cpu, d12, d24, d36, d48");

  py::class_<Gpt2Tokenizer>(m, "Tokenizer", "BPE tokenizer with Hugging Face's ids (GPT-2 files or a tokenizer.json)")
      .def_static("for_model", [](const std::string& dir) { return as_input([&] { return load_tokenizer_for(dir); }); },
                  py::arg("model_dir"), "The tokenizer of a model folder (its files, else the bundled GPT-2 one)")
      .def_static("load", [](const std::string& vocab, const std::string& merges) {
                    return as_input([&] { return Gpt2Tokenizer::load(vocab, merges); });
                  }, py::arg("vocab_json"), py::arg("merges_txt"))
      .def_static("from_tokenizer_json", [](const std::string& path) {
                    return as_input([&] { return Gpt2Tokenizer::load_hf_json(path); });
                  }, py::arg("path"))
      .def("encode", [](const Gpt2Tokenizer& t, const std::string& s, bool add_special_tokens) {
             return t.encode(s, add_special_tokens);
           }, py::arg("text"), py::arg("add_special_tokens") = false,
           "Token ids; add_special_tokens applies the tokenizer.json post-processor's template (Llama's BOS)")
      .def("token_to_id", [](const Gpt2Tokenizer& t, const std::string& token) -> std::optional<int32_t> {
             const int32_t id = t.token_to_id(token);
             return id < 0 ? std::nullopt : std::optional<int32_t>(id);
           }, py::arg("token"), "Id of a token as Hugging Face spells it, or None")
      .def("decode_bytes", [](const Gpt2Tokenizer& t, const std::vector<int32_t>& ids) {
             return py::bytes(as_input([&] { return t.decode(ids); }));
           }, py::arg("ids"), "The tokens' raw bytes (decode_bytes(encode(s)) == s.encode())")
      .def("decode", [](const Gpt2Tokenizer& t, const std::vector<int32_t>& ids) {
             const std::string b = as_input([&] { return t.decode(ids); });
             return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(b.data(), py::ssize_t(b.size()), "replace"));
           }, py::arg("ids"), "Text (invalid UTF-8 replaced by U+FFFD, as Hugging Face does)")
      .def_property_readonly("eot_id", &Gpt2Tokenizer::eot_id)
      .def_property_readonly("vocab_size", &Gpt2Tokenizer::vocab_size)
      .def("__len__", &Gpt2Tokenizer::vocab_size);

  m.def("score", [](const py::object& model, std::optional<std::string> text, std::optional<std::vector<int32_t>> ids,
                    std::optional<Gpt2Tokenizer> tokenizer, int64_t batch) {
          const Gpt2Model& g = model.cast<const Gpt2Model&>();
          if (text.has_value() == ids.has_value()) throw InputError("score: give exactly one of text= and ids=");
          if (batch < 1) throw InputError("score: batch must be >= 1, got " + std::to_string(batch));
          std::vector<int32_t> tokens = ids ? *ids : tokenizer_for(model, tokenizer, "score").encode(*text, true);
          if (tokens.size() < 2)
            throw InputError("score: " + std::to_string(tokens.size()) + " token(s); at least 2 are needed");
          LmScoreOptions opt;
          opt.max_batch = batch;
          LmScore r;
          {
            py::gil_scoped_release nogil;
            r = as_input([&] { return gpt2_score_tokens(g, tokens, opt); });
          }
          const double loss = r.mean();
          if (!std::isfinite(loss)) throw Error("score: the loss is not finite (the model overflows on this text)");
          py::dict d;
          d["loss"] = loss;
          d["tokens"] = tokens.size();
          return d;
        }, py::arg("model"), py::arg("text") = py::none(), py::kw_only(), py::arg("ids") = py::none(),
        py::arg("tokenizer") = py::none(), py::arg("batch") = 16,
        "{'loss': mean next-token cross-entropy, 'tokens': N}, as `aria score` prints it");

  m.def("generate", [](const py::object& model, const std::string& prompt, std::optional<Gpt2Tokenizer> tokenizer,
                       int64_t max_new_tokens, double temperature, int64_t top_k, uint64_t seed) {
          const Gpt2Model& g = model.cast<const Gpt2Model&>();
          if (max_new_tokens < 0 || temperature < 0 || top_k < 0)
            throw InputError("generate: max_new_tokens, temperature and top_k must be >= 0");
          const Gpt2Tokenizer tok = tokenizer_for(model, tokenizer, "generate");
          std::vector<int32_t> ids = tok.encode(prompt, /*add_special_tokens=*/true);  // as aria generate
          if (ids.empty()) throw InputError("generate: the prompt is empty");
          std::string out = prompt;
          DecodeStream text(tok, ids);
          {
            py::gil_scoped_release nogil;
            NoGradGuard no_grad;
            Rng rng(seed);
            const size_t P = size_t(g.config.n_positions);
            for (int64_t i = 0; i < max_new_tokens; ++i) {
              // The context is the last n_positions tokens (no KV cache), as in aria generate.
              const size_t start = ids.size() > P ? ids.size() - P : 0;
              std::vector<int32_t> ctx(ids.begin() + long(start), ids.end());
              Tensor x = Tensor::from_ints(ctx, {1, int64_t(ctx.size())}, g.device());
              Tensor h = gpt2_hidden(g, x).slice(1, int64_t(ctx.size()) - 1, int64_t(ctx.size()));
              std::vector<float> logits = gpt2_logits(g, h).to_floats();
              for (float v : logits)
                if (!std::isfinite(v)) throw Error("generate: the model's logits are not finite at step " + std::to_string(i + 1));
              const int32_t next = sample_token(std::move(logits), temperature, top_k, rng);
              ids.push_back(next);
              out += text.step(next);
            }
            out += text.finish();
          }
          return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(out.data(), py::ssize_t(out.size()), "replace"));
        }, py::arg("model"), py::arg("prompt"), py::kw_only(), py::arg("tokenizer") = py::none(),
        py::arg("max_new_tokens") = 40, py::arg("temperature") = 0.8, py::arg("top_k") = 40, py::arg("seed") = 0,
        "prompt + a sampled continuation, as `aria generate` prints it for the same seed");
}

}  // namespace aria::python
