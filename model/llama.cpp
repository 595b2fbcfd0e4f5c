#include "aria/model/llama.h"

#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <tuple>

#include <nlohmann/json.hpp>

#include "aria/core/autograd.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/json_file.h"
#include "aria/core/ops.h"
#include "aria/core/ops_llama.h"
#include "aria/core/rng.h"
#include "aria/model/safetensors.h"

namespace aria {

namespace fs = std::filesystem;

// ---- naming ----------------------------------------------------------------------------------------

// Every parameter slot with its HF name; the one place defining the names for load, save, init and
// named_parameters. Optional slots (biases, the untied head) are visited only when the config has them.
template <typename ModelT, typename F>
static void visit_parameters(ModelT& m, F&& f) {
  const LlamaConfig& c = m.config;
  f(std::string("model.embed_tokens.weight"), m.embed);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    auto& l = m.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    f(p + "input_layernorm.weight", l.input_norm_w);
    f(p + "self_attn.q_proj.weight", l.q_w);
    if (c.qkv_bias) f(p + "self_attn.q_proj.bias", l.q_b);
    f(p + "self_attn.k_proj.weight", l.k_w);
    if (c.qkv_bias) f(p + "self_attn.k_proj.bias", l.k_b);
    f(p + "self_attn.v_proj.weight", l.v_w);
    if (c.qkv_bias) f(p + "self_attn.v_proj.bias", l.v_b);
    f(p + "self_attn.o_proj.weight", l.o_w);
    if (c.o_bias) f(p + "self_attn.o_proj.bias", l.o_b);
    f(p + "post_attention_layernorm.weight", l.post_norm_w);
    f(p + "mlp.gate_proj.weight", l.gate_w);
    f(p + "mlp.up_proj.weight", l.up_w);
    f(p + "mlp.down_proj.weight", l.down_w);
  }
  f(std::string("model.norm.weight"), m.norm_w);
  if (!c.tie_word_embeddings) f(std::string("lm_head.weight"), m.lm_head);
}

// Shape of a tensor of a layer by its name after "model.layers.N.", or nothing.
static std::optional<Shape> layer_shape(const std::string& s, const LlamaConfig& c) {
  const int64_t C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  if (s == "input_layernorm.weight" || s == "post_attention_layernorm.weight") return Shape{C};
  if (s == "self_attn.q_proj.weight") return Shape{Q, C};
  if (s == "self_attn.k_proj.weight" || s == "self_attn.v_proj.weight") return Shape{KV, C};
  if (s == "self_attn.o_proj.weight") return Shape{C, Q};
  if (c.qkv_bias && s == "self_attn.q_proj.bias") return Shape{Q};
  if (c.qkv_bias && (s == "self_attn.k_proj.bias" || s == "self_attn.v_proj.bias")) return Shape{KV};
  if (c.o_bias && s == "self_attn.o_proj.bias") return Shape{C};
  if (s == "mlp.gate_proj.weight" || s == "mlp.up_proj.weight") return Shape{I, C};
  if (s == "mlp.down_proj.weight") return Shape{C, I};
  return std::nullopt;
}

// Expected shape of a tensor by its name, or nothing for a name this config does not have. Parsed
// from the name: a config claiming a million layers costs nothing before the checkpoint refutes it.
static std::optional<Shape> expected_shape(const std::string& name, const LlamaConfig& c) {
  const int64_t C = c.hidden_size;
  if (name == "model.embed_tokens.weight") return Shape{c.vocab_size, C};
  if (name == "model.norm.weight") return Shape{C};
  if (name == "lm_head.weight" && !c.tie_word_embeddings) return Shape{c.vocab_size, C};
  const std::string pre = "model.layers.";
  if (name.rfind(pre, 0) != 0) return std::nullopt;
  const size_t dot = name.find('.', pre.size());
  if (dot == std::string::npos || dot == pre.size() || dot > pre.size() + 8) return std::nullopt;
  const std::string digits = name.substr(pre.size(), dot - pre.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos || (digits.size() > 1 && digits[0] == '0'))
    return std::nullopt;
  if (std::stoll(digits) >= c.num_hidden_layers) return std::nullopt;
  return layer_shape(name.substr(dot + 1), c);
}

static size_t tensors_per_layer(const LlamaConfig& c) { return 9 + (c.qkv_bias ? 3 : 0) + (c.o_bias ? 1 : 0); }
static size_t expected_count(const LlamaConfig& c) {
  return 2 + (c.tie_word_embeddings ? 0 : 1) + tensors_per_layer(c) * size_t(c.num_hidden_layers);
}

// Calls f(name) for every expected tensor name in visit_parameters' order until f returns false.
template <typename F>
static void visit_parameter_names(const LlamaConfig& c, F&& f) {
  LlamaModel probe;
  probe.config = c;
  probe.layers.resize(1);
  if (!f(std::string("model.embed_tokens.weight"))) return;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    bool go = true;
    visit_parameters(probe, [&](const std::string& n, const Tensor&) {
      const std::string pre = "model.layers.0.";
      if (go && n.rfind(pre, 0) == 0) go = f("model.layers." + std::to_string(i) + "." + n.substr(pre.size()));
    });
    if (!go) return;
  }
  if (!f(std::string("model.norm.weight"))) return;
  if (!c.tie_word_embeddings) f(std::string("lm_head.weight"));
}

// ---- model methods ---------------------------------------------------------------------------------

std::vector<std::pair<std::string, Tensor>> LlamaModel::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  visit_parameters(*this, [&](const std::string& n, const Tensor& t) { out.emplace_back(n, t); });
  return out;
}

int64_t LlamaModel::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void LlamaModel::set_requires_grad(bool r) const {
  for (auto& [name, t] : named_parameters()) Tensor(t).set_requires_grad(r);
}

static LlamaModel copy_model(const LlamaModel& m, Device d, DType t) {
  LlamaModel out = m;
  visit_parameters(out, [&](const std::string&, Tensor& p) {
    const bool rg = p.requires_grad();
    Tensor c = Tensor::empty(p.shape(), t, d);
    c.copy_from(p);
    if (rg) c.set_requires_grad(true);
    p = c;
  });
  return out;
}

LlamaModel LlamaModel::to(Device d) const { return copy_model(*this, d, dtype()); }
LlamaModel LlamaModel::to(DType t) const { return copy_model(*this, device(), t); }

// ---- forward ---------------------------------------------------------------------------------------

// cos/sin [T, hd/2] for positions 0..T-1, made once per (device, table dtype, T) and shared (never
// written): a GPU upload per forward would wait for the queue to drain every step.
struct LlamaRopeCache {
  std::mutex mu;
  std::map<std::tuple<std::string, int, int64_t>, std::pair<Tensor, Tensor>> tables;
};

static std::pair<Tensor, Tensor> rope_tables_for(const LlamaModel& m, int64_t T) {
  const DType tdt = m.dtype() == DType::F64 ? DType::F64 : DType::F32;
  auto make = [&] {
    NoGradGuard ng;
    std::vector<int32_t> pos(static_cast<size_t>(T));
    std::iota(pos.begin(), pos.end(), 0);
    const auto f = ops::rope_inv_freq(m.config.head_dim, m.config.rope_theta, m.config.rope_scaling);
    Tensor inv = Tensor::from_floats(f, {int64_t(f.size())}).to(tdt).to(m.device());
    return ops::rope_tables(Tensor::from_ints(pos, {T}, m.device()), inv);
  };
  if (!m.rope_cache) return make();
  std::lock_guard<std::mutex> lock(m.rope_cache->mu);
  auto key = std::make_tuple(m.device().str(), int(tdt), T);
  auto it = m.rope_cache->tables.find(key);
  if (it == m.rope_cache->tables.end()) it = m.rope_cache->tables.emplace(key, make()).first;
  return it->second;
}

// x [.., in] times an nn.Linear weight [out, in], plus bias [out] when defined.
static Tensor linear_t(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y = ops::matmul(x, w, false, true);
  return b.defined() ? ops::bias_add(y, b) : y;
}

static Tensor attention(const LlamaModel& m, const LlamaLayer& l, int layer, const Tensor& a,
                        const std::pair<Tensor, Tensor>& cs) {
  const LlamaConfig& c = m.config;
  // q, k, v in one GEMM: the packed row layout gqa_attention reads (query heads, key heads, value heads).
  Tensor qkv = ops::matmul(a, ops::concat({l.q_w, l.k_w, l.v_w}, 0), false, true);
  if (c.qkv_bias) qkv = ops::bias_add(qkv, ops::concat({l.q_b, l.k_b, l.v_b}, 0));
  qkv = ops::rope(qkv, cs.first, cs.second, c.num_attention_heads + c.num_key_value_heads, c.head_dim);
  Tensor att = ops::gqa_attention(qkv, c.num_attention_heads, c.num_key_value_heads, c.window_of_layer(layer));
  return linear_t(att, l.o_w, l.o_b);
}

static Tensor mlp(const LlamaLayer& l, const Tensor& a) {
  Tensor gu = ops::matmul(a, ops::concat({l.gate_w, l.up_w}, 0), false, true);
  return ops::matmul(ops::swiglu_packed(gu), l.down_w, false, true);
}

Tensor llama_hidden(const LlamaModel& m, const Tensor& ids) {
  const LlamaConfig& c = m.config;
  ARIA_CHECK(ids.dim() == 2 && ids.dtype() == DType::I32, "llama: ids must be int32 [B, T], got ", ids.str());
  const int64_t T = ids.size(1);
  ARIA_CHECK(T >= 1 && T <= c.max_position_embeddings, "llama: sequence length ", T,
             " outside [1, max_position_embeddings = ", c.max_position_embeddings,
             "] (config.json's limit; longer inputs must be cut into windows)");
  const auto cs = rope_tables_for(m, T);
  const double eps = c.rms_norm_eps;
  Tensor x = ops::embedding(m.embed, ids);
  if (m.layers.empty()) return ops::rmsnorm(x, m.norm_w, eps);
  Tensor a = ops::rmsnorm(x, m.layers[0].input_norm_w, eps);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LlamaLayer& l = m.layers[i];
    std::tie(x, a) = ops::add_rmsnorm(x, attention(m, l, int(i), a, cs), l.post_norm_w, eps);
    const Tensor& next = i + 1 < m.layers.size() ? m.layers[i + 1].input_norm_w : m.norm_w;
    std::tie(x, a) = ops::add_rmsnorm(x, mlp(l, a), next, eps);
  }
  return a;
}

Tensor llama_logits(const LlamaModel& m, const Tensor& hidden) { return ops::matmul(hidden, m.head(), false, true); }

Tensor llama_lm_loss(const LlamaModel& m, const Tensor& ids, const Tensor& targets) {
  check_same_shape(ids, targets, "llama_lm_loss ids/targets");
  return ops::lm_head_cross_entropy(llama_hidden(m, ids), m.head(), targets, -100);
}

Tensor shift_labels(const Tensor& labels) {
  ARIA_CHECK(labels.dim() == 2 && labels.dtype() == DType::I32, "llama: labels must be int32 [B, T], got ",
             labels.str());
  const int64_t B = labels.size(0), T = labels.size(1);
  const std::vector<int32_t> lab = labels.to_ints();
  std::vector<int32_t> tg(size_t(B * T), -100);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) tg[size_t(b * T + t)] = lab[size_t(b * T + t + 1)];
  return Tensor::from_ints(tg, {B, T});
}

Tensor llama_causal_lm_loss(const LlamaModel& m, const Tensor& ids, const Tensor& labels) {
  Tensor tg = shift_labels(labels);
  return llama_lm_loss(m, ids, m.device().is_cpu() ? tg : tg.to(m.device()));
}

// ---- init ------------------------------------------------------------------------------------------

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

LlamaModel llama_random(const LlamaConfig& cfg, uint64_t seed, Device device) {
  validate_llama_config(cfg);
  LlamaModel m;
  m.config = cfg;
  m.layers.resize(size_t(cfg.num_hidden_layers));
  m.rope_cache = std::make_shared<LlamaRopeCache>();
  Rng rng(seed);
  visit_parameters(m, [&](const std::string& name, Tensor& t) {
    t = Tensor::empty(*expected_shape(name, cfg), DType::F32, device);
    if (ends_with(name, "norm.weight")) t.fill_(1.0);
    else if (ends_with(name, ".bias")) t.fill_(0.0);
    else rng.fill_normal(t, 0.0, 0.02);
  });
  return m;
}

// ---- load ------------------------------------------------------------------------------------------

namespace {

using json = nlohmann::json;

// The checkpoint's files: one, or the shards an index names (each opened once, headers only).
struct Checkpoint {
  std::deque<SafeTensorsFile> files;  // by_name points into it: a deque never moves its elements
  std::map<std::string, std::pair<const SafeTensorsFile*, const SafeTensorEntry*>> by_name;
};

void open_shards(const std::string& dir, const std::string& index_path, Checkpoint& ck) {
  const std::string ctx = "safetensors index '" + index_path + "': ";
  json j = read_json_file(index_path, "safetensors index", uint64_t(1) << 28);
  ARIA_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), ctx,
             "needs a 'weight_map' object (tensor name -> shard file)");
  std::map<std::string, size_t> shard_of_file;
  std::vector<std::pair<std::string, std::string>> wanted;  // tensor, shard
  for (auto& [name, v] : j["weight_map"].items()) {
    ARIA_CHECK(v.is_string(), ctx, "weight_map['", name, "'] must be a file name, got ", v.dump());
    const std::string shard = v.get<std::string>();
    ARIA_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..", ctx,
               "weight_map['", name, "'] = '", shard, "' is not a file name in the model folder");
    if (!shard_of_file.count(shard)) {
      const std::string path = (fs::path(dir) / shard).string();
      ARIA_CHECK(fs::exists(path), ctx, "shard '", shard, "' (holding '", name, "') does not exist in '", dir, "'");
      shard_of_file[shard] = ck.files.size();
      ck.files.push_back(SafeTensorsFile::open(path));
    }
    wanted.emplace_back(name, shard);
  }
  ARIA_CHECK(!wanted.empty(), ctx, "'weight_map' is empty");
  for (auto& [name, shard] : wanted) {
    const SafeTensorsFile& f = ck.files[shard_of_file.at(shard)];
    const SafeTensorEntry* e = f.find(name);
    ARIA_CHECK(e, ctx, "tensor '", name, "' is mapped to '", shard, "', which does not hold it");
    ck.by_name[name] = {&f, e};
  }
  // A tensor in a shard but not in the map would be silently dropped by transformers too; here it
  // is an error, so that a mismatched index and shards never load half a model.
  for (const SafeTensorsFile& f : ck.files)
    for (const SafeTensorEntry& e : f.entries())
      ARIA_CHECK(ck.by_name.count(e.name) && ck.by_name.at(e.name).first == &f, ctx, "shard '", f.path(),
                 "' holds '", e.name, "', which the weight_map does not assign to it");
}

void open_checkpoint(const std::string& dir, Checkpoint& ck) {
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  if (fs::exists(single)) {
    ck.files.push_back(SafeTensorsFile::open(single));
    for (const SafeTensorEntry& e : ck.files[0].entries()) ck.by_name[e.name] = {&ck.files[0], &e};
  } else {
    ARIA_CHECK(fs::exists(index), "'", dir,
               "' has neither model.safetensors nor model.safetensors.index.json (only safetensors checkpoints are "
               "supported; convert others with save_pretrained(safe_serialization=True))");
    open_shards(dir, index, ck);
  }
}

}  // namespace

LlamaModel llama_load(const std::string& dir, Device device, const LlamaLoadOptions& options) {
  ARIA_CHECK(fs::is_directory(dir), "model directory '", dir, "' does not exist");
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  ARIA_CHECK(fs::exists(cfg_path), "'", dir, "' has no config.json (expected a Hugging Face model directory)");
  ARIA_CHECK(is_floating(options.dtype), "llama_load: dtype must be a float type, got ", dtype_name(options.dtype));
  LlamaModel m;
  m.config = load_llama_config(cfg_path);
  const LlamaConfig& c = m.config;
  Checkpoint ck;
  open_checkpoint(dir, ck);

  // Names and shapes against the config, from the headers alone.
  std::map<std::string, std::pair<const SafeTensorsFile*, const SafeTensorEntry*>> found;
  const SafeTensorEntry* tied_head = nullptr;
  const SafeTensorsFile* tied_file = nullptr;
  for (auto& [name, fe] : ck.by_name) {
    const std::string& path = fe.first->path();
    if (ends_with(name, ".rotary_emb.inv_freq")) continue;  // a buffer older transformers saved
    if (name == "lm_head.weight" && c.tie_word_embeddings) {
      tied_head = fe.second;
      tied_file = fe.first;
      continue;
    }
    const std::optional<Shape> want = expected_shape(name, c);
    ARIA_CHECK(want.has_value(), path, ": unexpected tensor '", name, "' for a ", c.architecture(), " with ",
               c.num_hidden_layers, " layers", c.qkv_bias ? "" : " (no q/k/v biases)");
    ARIA_CHECK(fe.second->shape == *want, path, ": tensor '", name, "' has shape ", shape_str(fe.second->shape),
               ", config.json implies ", shape_str(*want));
    found[name] = fe;
  }
  if (found.size() != expected_count(c)) {
    std::string missing;
    visit_parameter_names(c, [&](const std::string& n) {
      if (found.count(n)) return true;
      missing = n;
      return false;
    });
    ARIA_FAIL("'", dir, "': missing tensor '", missing, "' (config.json implies ", expected_count(c),
              " tensors; the checkpoint holds ", found.size(), ")");
  }
  if (tied_head)
    ARIA_CHECK(tied_head->shape == *expected_shape("model.embed_tokens.weight", c), tied_file->path(),
               ": lm_head.weight has shape ", shape_str(tied_head->shape), ", expected the tied embedding's");

  m.layers.resize(size_t(c.num_hidden_layers));
  m.rope_cache = std::make_shared<LlamaRopeCache>();
  visit_parameters(m, [&](const std::string& name, Tensor& t) {
    const auto& [file, e] = found.at(name);
    Tensor host = file->load(name, options.dtype);
    if (!options.allow_nonfinite) {
      const int64_t bad = first_nonfinite(host);
      ARIA_CHECK(bad < 0, file->path(), ": tensor '", name, "' holds a non-finite value at flat index ", bad,
                 " (as ", dtype_name(options.dtype), "): the checkpoint is broken (a diverged run?)");
    }
    t = device.is_cpu() ? host : host.to(device);
  });
  if (tied_head) {
    const auto a = tied_file->load("lm_head.weight", DType::F32).to_floats();
    const auto b = found.at("model.embed_tokens.weight").first->load("model.embed_tokens.weight", DType::F32).to_floats();
    ARIA_CHECK(a == b, tied_file->path(), ": lm_head.weight differs from model.embed_tokens.weight while "
               "config.json says tie_word_embeddings = true");
  }
  return m;
}

// ---- save ------------------------------------------------------------------------------------------

void llama_save(const LlamaModel& m, const std::string& dir, const LlamaSaveOptions& options) {
  const DType dt = options.dtype;
  ARIA_CHECK(dt == DType::F32 || dt == DType::F16 || dt == DType::BF16, "llama_save: dtype must be float32, "
             "float16 or bfloat16, got ", dtype_name(dt));
  ARIA_CHECK(options.max_shard_bytes >= 0, "llama_save: max_shard_bytes must be >= 0");
  LlamaConfig cfg = m.config;
  cfg.torch_dtype = dt == DType::F32 ? "float32" : dt == DType::F16 ? "float16" : "bfloat16";
  validate_llama_config(cfg);
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& [name, t] : m.named_parameters()) tensors.emplace_back(name, t.detach().to(dt));
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  if (options.max_shard_bytes == 0) {
    save_safetensors(single, tensors, meta);
    fs::remove(index);
  } else {
    std::vector<std::vector<std::pair<std::string, Tensor>>> shards(1);
    int64_t bytes = 0, total = 0;
    for (auto& nt : tensors) {
      const int64_t b = nt.second.numel() * int64_t(dtype_size(dt));
      if (!shards.back().empty() && bytes + b > options.max_shard_bytes) {
        shards.emplace_back();
        bytes = 0;
      }
      shards.back().push_back(nt);
      bytes += b;
      total += b;
    }
    nlohmann::ordered_json map = nlohmann::ordered_json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
      char file[64];
      std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
      save_safetensors((fs::path(dir) / file).string(), shards[s], meta);
      for (auto& nt : shards[s]) map[nt.first] = file;
    }
    nlohmann::ordered_json j = {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
    io::write_file_atomic(index, j.dump(2) + "\n");
    fs::remove(single);
  }
  save_llama_config(cfg, (fs::path(dir) / "config.json").string());
}

}  // namespace aria
