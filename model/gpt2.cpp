#include "aria/model/gpt2.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <tuple>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_capture.h"
#include "aria/core/rng.h"
#include "aria/model/gated_mlp.h"
#include "aria/model/safetensors.h"

namespace aria {

namespace fs = std::filesystem;

// Pointers to every parameter slot with its HF name; one place defines the naming for load, save
// and named_parameters.
template <typename ModelT, typename F>
static void visit_parameters(ModelT& m, F&& f) {
  f("wte.weight", m.wte);
  f("wpe.weight", m.wpe);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    auto& b = m.blocks[i];
    const std::string p = "h." + std::to_string(i) + ".";
    f(p + "ln_1.weight", b.ln1_w);
    f(p + "ln_1.bias", b.ln1_b);
    f(p + "attn.c_attn.weight", b.attn_w);
    f(p + "attn.c_attn.bias", b.attn_b);
    f(p + "attn.c_proj.weight", b.attn_proj_w);
    f(p + "attn.c_proj.bias", b.attn_proj_b);
    f(p + "ln_2.weight", b.ln2_w);
    f(p + "ln_2.bias", b.ln2_b);
    if (b.gated) {
      visit_gated_mlp_parameters(*b.gated, p + "mlp.", f);
    } else {
      f(p + "mlp.c_fc.weight", b.mlp.fc_w);
      f(p + "mlp.c_fc.bias", b.mlp.fc_b);
      f(p + "mlp.c_proj.weight", b.mlp.proj_w);
      f(p + "mlp.c_proj.bias", b.mlp.proj_b);
    }
  }
  f("ln_f.weight", m.lnf_w);
  f("ln_f.bias", m.lnf_b);
}

// Expected shape of a plain GPT-2 tensor by its name, or nothing for a name GPT-2 with this config
// does not have. Parsed from the name, not looked up in a table of every tensor: a config claiming a
// million layers must not cost a million-layer table before the checkpoint can refute it.
static std::optional<Shape> expected_shape(const std::string& name, const Gpt2Config& c) {
  const int64_t C = c.n_embd;
  if (name == "wte.weight") return Shape{c.vocab_size, C};
  if (name == "wpe.weight") return Shape{c.n_positions, C};
  if (name == "ln_f.weight" || name == "ln_f.bias") return Shape{C};
  if (name.rfind("h.", 0) != 0) return std::nullopt;
  const size_t dot = name.find('.', 2);
  if (dot == std::string::npos || dot == 2 || dot > 9) return std::nullopt;
  const std::string digits = name.substr(2, dot - 2);
  if (digits.find_first_not_of("0123456789") != std::string::npos || (digits.size() > 1 && digits[0] == '0'))
    return std::nullopt;  // "h.01." is not a name GPT-2 writes
  if (std::stoll(digits) >= c.n_layer) return std::nullopt;
  const std::string suffix = name.substr(dot + 1);
  if (suffix == "ln_1.weight" || suffix == "ln_1.bias" || suffix == "ln_2.weight" || suffix == "ln_2.bias")
    return Shape{C};
  if (suffix == "attn.c_attn.weight") return Shape{C, 3 * C};
  if (suffix == "attn.c_attn.bias") return Shape{3 * C};
  if (suffix == "attn.c_proj.weight") return Shape{C, C};
  if (suffix == "attn.c_proj.bias") return Shape{C};
  if (suffix == "mlp.c_fc.weight") return Shape{C, 4 * C};
  if (suffix == "mlp.c_fc.bias") return Shape{4 * C};
  if (suffix == "mlp.c_proj.weight") return Shape{4 * C, C};
  if (suffix == "mlp.c_proj.bias") return Shape{C};
  return std::nullopt;
}

// The tensor names of a plain GPT-2 in visit_parameters' order, without building a model.
template <typename F>
static void visit_parameter_names(const Gpt2Config& c, F&& f) {
  static const char* kBlock[] = {"ln_1.weight",       "ln_1.bias",       "attn.c_attn.weight", "attn.c_attn.bias",
                                 "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias",
                                 "mlp.c_fc.weight",    "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias"};
  if (!f(std::string("wte.weight")) || !f(std::string("wpe.weight"))) return;
  for (int i = 0; i < c.n_layer; ++i)
    for (const char* s : kBlock)
      if (!f("h." + std::to_string(i) + "." + s)) return;
  if (f(std::string("ln_f.weight"))) f(std::string("ln_f.bias"));
}

std::vector<std::pair<std::string, Tensor>> Gpt2Model::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  visit_parameters(*this, [&](const std::string& n, const Tensor& t) { out.emplace_back(n, t); });
  return out;
}

int64_t Gpt2Model::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Gpt2Model::set_requires_grad(bool r) const {
  for (auto& [name, t] : named_parameters()) Tensor(t).set_requires_grad(r);
}

// Deep copy of every parameter into (device, dtype); the copies are leaves keeping requires_grad.
static Gpt2Model copy_model(const Gpt2Model& m, Device d, DType t) {
  Gpt2Model out = m;
  for (auto& b : out.blocks)
    if (b.gated) b.gated = std::make_shared<GatedMlp>(*b.gated);
  visit_parameters(out, [&](const std::string&, Tensor& p) {
    bool rg = p.requires_grad();
    Tensor c = Tensor::empty(p.shape(), t, d);
    c.copy_from(p);
    if (rg) c.set_requires_grad(true);
    p = c;
  });
  return out;
}

Gpt2Model Gpt2Model::to(Device d) const { return copy_model(*this, d, dtype()); }
Gpt2Model Gpt2Model::to(DType t) const { return copy_model(*this, device(), t); }

// One forward path: the fused ops (GEMM epilogues, residual add + layernorm, fused classifier) run as
// their plain composition only when options.capture asks for per-sample captures (core/ops_capture.h).
Tensor mlp_forward(const MlpWeights& w, const Tensor& x, ops::CaptureSink* capture) {
  return ops::gelu_mlp(x, w.fc_w, w.fc_b, w.proj_w, w.proj_b, capture);
}

// Block l's MLP; a gated one's gate values go to options.gates when the caller asked for them.
static Tensor block_mlp(const Gpt2Block& b, size_t l, const Tensor& a, const ForwardOptions& options) {
  if (!b.gated) return mlp_forward(b.mlp, a, options.capture);
  auto [out, pi] = gated_mlp_forward(*b.gated, a, options.capture);
  if (options.gates) options.gates->pi[l] = std::move(pi);
  return out;
}

static Tensor attention_branch(const Gpt2Block& b, const Tensor& a, int n_head, ops::CaptureSink* capture) {
  return ops::linear(ops::causal_attention(ops::linear(a, b.attn_w, b.attn_b, capture), n_head), b.attn_proj_w,
                     b.attn_proj_b, capture);
}

// 0..T-1 on `device`. GPU copies are uploaded once per (device, T) and shared (never written):
// an upload per forward would wait for the GPU's queue to drain every step. Deliberately leaked,
// like the cuBLAS plans: freeing device memory from a static destructor can outlive the runtime.
static Tensor position_ids(int64_t T, Device device) {
  auto upload = [&] {
    std::vector<int32_t> pos(static_cast<size_t>(T));
    std::iota(pos.begin(), pos.end(), 0);
    return Tensor::from_ints(pos, {T}, device);
  };
  if (device.is_cpu()) return upload();
  static std::mutex mu;
  static auto* cache = new std::map<std::pair<std::string, int64_t>, Tensor>();
  std::lock_guard<std::mutex> lock(mu);
  auto [it, fresh] = cache->try_emplace({device.str(), T});
  if (fresh) it->second = upload();
  return it->second;
}

Tensor gpt2_hidden(const Gpt2Model& m, const Tensor& ids, const ForwardOptions& options) {
  const auto& c = m.config;
  ARIA_CHECK(ids.dim() == 2 && ids.dtype() == DType::I32, "gpt2: ids must be int32 [B, T], got ", ids.str());
  const int64_t T = ids.size(1);
  ARIA_CHECK(T >= 1 && T <= c.n_positions, "gpt2: sequence length ", T, " outside [1, n_positions=", c.n_positions, "]");
  if (options.gates) options.gates->pi.assign(m.blocks.size(), Tensor());
  ops::CaptureSink* cap = options.capture;
  Tensor x = ops::add(ops::embedding(m.wte, ids, cap), ops::embedding(m.wpe, position_ids(T, m.device()), cap));
  const double eps = c.layer_norm_epsilon;
  // Every residual add feeds the next layernorm (ln_2, the next block's ln_1, or ln_f): one pass each.
  Tensor a = m.blocks.empty() ? ops::layernorm(x, m.lnf_w, m.lnf_b, eps, cap)
                              : ops::layernorm(x, m.blocks[0].ln1_w, m.blocks[0].ln1_b, eps, cap);
  for (size_t l = 0; l < m.blocks.size(); ++l) {
    const Gpt2Block& b = m.blocks[l];
    std::tie(x, a) = ops::add_layernorm(x, attention_branch(b, a, c.n_head, cap), b.ln2_w, b.ln2_b, eps, cap);
    const bool last = l + 1 == m.blocks.size();
    const Tensor& nw = last ? m.lnf_w : m.blocks[l + 1].ln1_w;
    const Tensor& nb = last ? m.lnf_b : m.blocks[l + 1].ln1_b;
    std::tie(x, a) = ops::add_layernorm(x, block_mlp(b, l, a, options), nw, nb, eps, cap);
  }
  return a;
}

Tensor gpt2_logits(const Gpt2Model& m, const Tensor& hidden) { return ops::matmul(hidden, m.wte, false, true); }

Tensor gpt2_lm_loss(const Gpt2Model& m, const Tensor& ids, const Tensor& targets, const ForwardOptions& options) {
  check_same_shape(ids, targets, "gpt2_lm_loss ids/targets");
  return ops::lm_head_cross_entropy(gpt2_hidden(m, ids, options), m.wte, targets, -100, options.capture);
}

Gpt2Model gpt2_random(const Gpt2Config& cfg, uint64_t seed, Device device) {
  Gpt2Model m;
  m.config = cfg;
  validate_gpt2_config(cfg);  // refuses absurd sizes before allocating them
  m.blocks.resize(size_t(cfg.n_layer));
  Rng rng(seed);
  const double resid_std = 0.02 / std::sqrt(2.0 * cfg.n_layer);
  visit_parameters(m, [&](const std::string& name, Tensor& t) {
    t = Tensor::empty(*expected_shape(name, cfg), DType::F32, device);
    const bool is_ln = name.find("ln_") != std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_ln && !is_bias) {
      t.fill_(1.0);
    } else if (is_bias) {
      t.fill_(0.0);
    } else if (name.find("c_proj.weight") != std::string::npos) {
      rng.fill_normal(t, 0.0, resid_std);
    } else {
      rng.fill_normal(t, 0.0, 0.02);
    }
  });
  return m;
}

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "index 7 ([0, 7] of [2, 5])": where a flat index lies in a shape.
static std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  int64_t r = flat;
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] > 0 ? r % shape[d] : 0;
    r = shape[d] > 0 ? r / shape[d] : 0;
  }
  std::string s = "index " + std::to_string(flat);
  if (shape.size() > 1) {
    s += " ([";
    for (size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
    s += "] of " + shape_str(shape) + ")";
  }
  return s;
}

// Element i of a contiguous float32 CPU tensor as text ("nan", "inf", "-inf").
static std::string element_str(const Tensor& t, int64_t i) {
  const float v = static_cast<const float*>(t.raw_data())[i];
  return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

Gpt2Model gpt2_load(const std::string& dir, Device device, const Gpt2LoadOptions& options) {
  ARIA_CHECK(fs::is_directory(dir), "model directory '", dir, "' does not exist");
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  const std::string st_path = (fs::path(dir) / "model.safetensors").string();
  ARIA_CHECK(fs::exists(cfg_path), "'", dir, "' has no config.json (expected a Hugging Face GPT-2 directory)");
  ARIA_CHECK(fs::exists(st_path), "'", dir,
             "' has no model.safetensors (only safetensors checkpoints are supported; convert pytorch_model.bin "
             "with transformers' save_pretrained(safe_serialization=True))");
  Gpt2Model m;
  m.config = load_gpt2_config(cfg_path);
  // Only the header is read here (the data stays mapped, unread).
  SafeTensorsFile file = SafeTensorsFile::open(st_path);

  // Everything below up to the allocation of the model checks the config against the header alone:
  // a config claiming more layers (or larger sizes) than the file holds fails here, before any
  // memory is spent on it. Stored names (with or without "transformer.") map to ours; HF's
  // non-parameter buffers are skipped.
  std::map<std::string, const SafeTensorEntry*> by_name;
  const SafeTensorEntry* lm_head = nullptr;
  for (const SafeTensorEntry& e : file.entries()) {
    std::string n = e.name;
    if (n.rfind("transformer.", 0) == 0) n = n.substr(12);
    if (ends_with(n, ".attn.bias") || ends_with(n, ".attn.masked_bias")) continue;  // causal-mask buffers
    if (n == "lm_head.weight") {
      lm_head = &e;
      continue;
    }
    const std::optional<Shape> want = expected_shape(n, m.config);
    ARIA_CHECK(want.has_value(), st_path, ": unexpected tensor '", e.name, "' for a GPT-2 with config ",
               m.config.n_layer, " layers");
    ARIA_CHECK(!by_name.count(n), st_path, ": tensor '", n, "' stored twice");
    ARIA_CHECK(e.shape == *want, st_path, ": tensor '", e.name, "' has shape ", shape_str(e.shape),
               ", config.json implies ", shape_str(*want));
    by_name[n] = &e;
  }
  // Every stored tensor is expected and has its shape; the first expected one not stored is named.
  const size_t want_count = 4 + 12 * size_t(m.config.n_layer);
  if (by_name.size() != want_count) {
    std::string missing;
    visit_parameter_names(m.config, [&](const std::string& n) {
      if (by_name.count(n)) return true;
      missing = n;
      return false;
    });
    ARIA_FAIL(st_path, ": missing tensor '", missing, "' (config.json '", cfg_path, "' implies ", want_count,
              " tensors with n_layer = ", m.config.n_layer, "; the file holds ", by_name.size(), ")");
  }
  if (lm_head)
    ARIA_CHECK(lm_head->shape == *expected_shape("wte.weight", m.config), st_path, ": lm_head.weight has shape ",
               shape_str(lm_head->shape), ", expected the tied wte shape");

  m.blocks.resize(size_t(m.config.n_layer));
  visit_parameters(m, [&](const std::string& name, Tensor& t) {
    const SafeTensorEntry* e = by_name.at(name);
    Tensor host = file.load(e->name, DType::F32);
    // On the converted buffer, so a float64 value too large for float32 counts as the Inf it became.
    if (!options.allow_nonfinite) {
      const int64_t bad = first_nonfinite(host);
      if (bad >= 0) {
        std::string value = element_str(host, bad);
        if (e->dtype == DType::F64) {  // finite in the file, Inf as float32: say so (error path only)
          const double v = static_cast<const double*>(file.load(e->name, DType::F64).raw_data())[bad];
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.9g", v);
          if (std::isfinite(v)) value += std::string(": the float64 value ") + buf + " is beyond float32's range";
        }
        ARIA_FAIL(st_path, ": tensor '", e->name, "' holds a non-finite value (", value, ") at ",
                  index_str(bad, e->shape),
                  ": the checkpoint is broken (a diverged run?). To load it anyway, pass --allow-nonfinite "
                  "(aria score / generate) or Gpt2LoadOptions{.allow_nonfinite = true}");
      }
    }
    t = device.is_cpu() ? host : host.to(device);
  });
  if (lm_head) {
    auto a = file.load(lm_head->name, DType::F32).to_floats();
    auto b = m.wte.to_floats();
    // NaN equals NaN here: with allow_nonfinite a broken tied head is still the same tensor.
    bool same = a.size() == b.size();
    for (size_t i = 0; same && i < a.size(); ++i) same = a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]));
    ARIA_CHECK(same, st_path, ": lm_head.weight differs from wte.weight; aria supports GPT-2's tied head only");
  }
  return m;
}

void gpt2_save(const Gpt2Model& m, const std::string& dir) {
  for (const auto& b : m.blocks)
    ARIA_CHECK(!b.gated, "gpt2_save: this model has ARIA gated MLPs; save it with the continual trainer's checkpoint");
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, t] : m.named_parameters()) tensors.emplace_back("transformer." + name, t.to(DType::F32));
  save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  save_gpt2_config(m.config, (fs::path(dir) / "config.json").string());
}

}  // namespace aria
