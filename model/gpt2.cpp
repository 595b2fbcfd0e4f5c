#include "model/gpt2.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <numeric>
#include <tuple>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/rng.h"
#include "model/gated_mlp.h"
#include "model/safetensors.h"

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

// Expected shape of every plain GPT-2 tensor, by name.
static std::map<std::string, Shape> expected_shapes(const Gpt2Config& c) {
  const int64_t C = c.n_embd;
  std::map<std::string, Shape> s;
  s["wte.weight"] = {c.vocab_size, C};
  s["wpe.weight"] = {c.n_positions, C};
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    s[p + "ln_1.weight"] = s[p + "ln_1.bias"] = s[p + "ln_2.weight"] = s[p + "ln_2.bias"] = {C};
    s[p + "attn.c_attn.weight"] = {C, 3 * C};
    s[p + "attn.c_attn.bias"] = {3 * C};
    s[p + "attn.c_proj.weight"] = {C, C};
    s[p + "attn.c_proj.bias"] = {C};
    s[p + "mlp.c_fc.weight"] = {C, 4 * C};
    s[p + "mlp.c_fc.bias"] = {4 * C};
    s[p + "mlp.c_proj.weight"] = {4 * C, C};
    s[p + "mlp.c_proj.bias"] = {C};
  }
  s["ln_f.weight"] = s["ln_f.bias"] = {C};
  return s;
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

// The fused kernels (GEMM epilogues, residual add + layernorm, fused classifier) are used unless a
// per-sample-gradient observer is installed: it must see the plain linear / layernorm calls.
static bool use_fused_ops() { return ops::op_observer() == nullptr; }

Tensor mlp_forward(const MlpWeights& w, const Tensor& x) {
  if (use_fused_ops()) return ops::gelu_mlp(x, w.fc_w, w.fc_b, w.proj_w, w.proj_b);
  return ops::linear(ops::gelu(ops::linear(x, w.fc_w, w.fc_b)), w.proj_w, w.proj_b);
}

static Tensor block_mlp(const Gpt2Block& b, const Tensor& a) {
  return b.gated ? gated_mlp_forward(*b.gated, a) : mlp_forward(b.mlp, a);
}

static Tensor attention_branch(const Gpt2Block& b, const Tensor& a, int n_head) {
  return ops::linear(ops::causal_attention(ops::linear(a, b.attn_w, b.attn_b), n_head), b.attn_proj_w, b.attn_proj_b);
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

Tensor gpt2_hidden(const Gpt2Model& m, const Tensor& ids) {
  const auto& c = m.config;
  ARIA_CHECK(ids.dim() == 2 && ids.dtype() == DType::I32, "gpt2: ids must be int32 [B, T], got ", ids.str());
  const int64_t T = ids.size(1);
  ARIA_CHECK(T >= 1 && T <= c.n_positions, "gpt2: sequence length ", T, " outside [1, n_positions=", c.n_positions, "]");
  Tensor x = ops::add(ops::embedding(m.wte, ids), ops::embedding(m.wpe, position_ids(T, m.device())));
  const double eps = c.layer_norm_epsilon;
  if (!use_fused_ops()) {
    for (const Gpt2Block& b : m.blocks) {
      x = ops::add(x, attention_branch(b, ops::layernorm(x, b.ln1_w, b.ln1_b, eps), c.n_head));
      x = ops::add(x, block_mlp(b, ops::layernorm(x, b.ln2_w, b.ln2_b, eps)));
    }
    return ops::layernorm(x, m.lnf_w, m.lnf_b, eps);
  }
  // Every residual add feeds the next layernorm (ln_2, the next block's ln_1, or ln_f): one pass each.
  Tensor a = m.blocks.empty() ? ops::layernorm(x, m.lnf_w, m.lnf_b, eps)
                              : ops::layernorm(x, m.blocks[0].ln1_w, m.blocks[0].ln1_b, eps);
  for (size_t l = 0; l < m.blocks.size(); ++l) {
    const Gpt2Block& b = m.blocks[l];
    std::tie(x, a) = ops::add_layernorm(x, attention_branch(b, a, c.n_head), b.ln2_w, b.ln2_b, eps);
    const bool last = l + 1 == m.blocks.size();
    const Tensor& nw = last ? m.lnf_w : m.blocks[l + 1].ln1_w;
    const Tensor& nb = last ? m.lnf_b : m.blocks[l + 1].ln1_b;
    std::tie(x, a) = ops::add_layernorm(x, block_mlp(b, a), nw, nb, eps);
  }
  return a;
}

Tensor gpt2_logits(const Gpt2Model& m, const Tensor& hidden) { return ops::matmul(hidden, m.wte, false, true); }

Tensor gpt2_lm_loss(const Gpt2Model& m, const Tensor& ids, const Tensor& targets) {
  check_same_shape(ids, targets, "gpt2_lm_loss ids/targets");
  if (use_fused_ops()) return ops::lm_head_cross_entropy(gpt2_hidden(m, ids), m.wte, targets, -100);
  return ops::cross_entropy(gpt2_logits(m, gpt2_hidden(m, ids)), targets, -100);
}

Gpt2Model gpt2_random(const Gpt2Config& cfg, uint64_t seed, Device device) {
  Gpt2Model m;
  m.config = cfg;
  m.blocks.resize(size_t(cfg.n_layer));
  auto shapes = expected_shapes(cfg);
  Rng rng(seed);
  const double resid_std = 0.02 / std::sqrt(2.0 * cfg.n_layer);
  visit_parameters(m, [&](const std::string& name, Tensor& t) {
    t = Tensor::empty(shapes.at(name), DType::F32, device);
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

Gpt2Model gpt2_load(const std::string& dir, Device device) {
  ARIA_CHECK(fs::is_directory(dir), "model directory '", dir, "' does not exist");
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  const std::string st_path = (fs::path(dir) / "model.safetensors").string();
  ARIA_CHECK(fs::exists(cfg_path), "'", dir, "' has no config.json (expected a Hugging Face GPT-2 directory)");
  ARIA_CHECK(fs::exists(st_path), "'", dir,
             "' has no model.safetensors (only safetensors checkpoints are supported; convert pytorch_model.bin "
             "with transformers' save_pretrained(safe_serialization=True))");
  Gpt2Model m;
  m.config = load_gpt2_config(cfg_path);
  m.blocks.resize(size_t(m.config.n_layer));
  auto shapes = expected_shapes(m.config);
  SafeTensorsFile file = SafeTensorsFile::open(st_path);

  // Map stored names (with or without "transformer.") to ours; skip HF's non-parameter buffers.
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
    ARIA_CHECK(shapes.count(n), st_path, ": unexpected tensor '", e.name, "' for a GPT-2 with config ",
               m.config.n_layer, " layers");
    ARIA_CHECK(!by_name.count(n), st_path, ": tensor '", n, "' stored twice");
    by_name[n] = &e;
  }
  visit_parameters(m, [&](const std::string& name, Tensor& t) {
    auto it = by_name.find(name);
    ARIA_CHECK(it != by_name.end(), st_path, ": missing tensor '", name, "'");
    const Shape& want = shapes.at(name);
    ARIA_CHECK(it->second->shape == want, st_path, ": tensor '", it->second->name, "' has shape ",
               shape_str(it->second->shape), ", config.json implies ", shape_str(want));
    Tensor host = file.load(it->second->name, DType::F32);
    t = device.is_cpu() ? host : host.to(device);
  });
  if (lm_head) {
    ARIA_CHECK(lm_head->shape == shapes.at("wte.weight"), st_path, ": lm_head.weight has shape ",
               shape_str(lm_head->shape), ", expected the tied wte shape");
    auto a = file.load(lm_head->name, DType::F32).to_floats();
    auto b = m.wte.to_floats();
    ARIA_CHECK(a == b, st_path, ": lm_head.weight differs from wte.weight; aria supports GPT-2's tied head only");
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
