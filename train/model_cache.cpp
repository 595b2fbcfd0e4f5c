#include "train/model_cache.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "model/gpt2.h"
#include "model/tokenizer.h"
#include "train/progress.h"

namespace aria {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr const char* kMarker = "aria-cache.json";
constexpr const char* kFormat = "aria-model-cache-v1";

// A regular file's content (a FIFO would block open() forever): io::read_file's checks.
std::string read_file(const std::string& path, const char* what) {
  try {
    return io::read_file(path, what);
  } catch (const Error& e) {
    ARIA_FAIL("model cache: cannot open ", what, ": ", e.what());
  }
}

// 64-bit FNV-1a, fed piece by piece.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;  // separator, so ("ab","c") and ("a","bc") differ
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return buf;
  }
};

// The corpus text the recipe trains on: the whole file, or its first whole lines within the cap.
std::string corpus_text(const std::string& path, int64_t max_bytes) {
  std::string s = read_file(path, "corpus");
  if (max_bytes > 0 && int64_t(s.size()) > max_bytes) {
    size_t cut = s.rfind('\n', size_t(max_bytes));
    s.resize(cut == std::string::npos ? size_t(max_bytes) : cut + 1);
  }
  return s;
}

bool process_alive(long pid) { return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM); }

// Removes <entry>.tmp.<pid> folders whose process is gone (crashed builds).
void remove_stale_temporaries(const fs::path& final_dir) {
  std::error_code ec;
  const std::string prefix = final_dir.filename().string() + ".tmp.";
  for (const auto& e : fs::directory_iterator(final_dir.parent_path(), ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(n.c_str() + prefix.size(), &end, 10);
    if (end && *end == '\0' && !process_alive(pid)) fs::remove_all(e.path(), ec);
  }
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void write_text(const fs::path& p, const std::string& text) { io::write_file_atomic(p.string(), text); }

// Pretrains the recipe's model into `dir` (which exists and is empty) and writes the marker last.
ojson build_into(const ModelCacheRequest& req, const std::string& key, const fs::path& dir, Device device,
                 std::ostream& log) {
  const PretrainRecipe& r = req.recipe;
  const auto t0 = std::chrono::steady_clock::now();
  const Gpt2Tokenizer tok = Gpt2Tokenizer::load(req.vocab_dir + "/vocab.json", req.vocab_dir + "/merges.txt");
  TokenDataset train{tok.encode(corpus_text(req.corpus, r.max_corpus_bytes))};
  ARIA_CHECK(!train.tokens.empty(), "model cache: corpus '", req.corpus, "' gives no tokens");
  TokenDataset val;
  if (!req.validation.empty()) val.tokens = tok.encode(read_file(req.validation, "validation text"));
  const double tokenize_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log << "model cache: tokenized " << train.tokens.size() << " training tokens"
      << (val.tokens.empty() ? "" : " and " + std::to_string(val.tokens.size()) + " validation tokens") << " in "
      << format_duration(tokenize_seconds) << "\n";

  Gpt2Model model = gpt2_random(r.arch, r.init_seed, device);
  const LmTrainResult res = train_lm(model, train, val.tokens.empty() ? nullptr : &val, r.train, log);
  gpt2_save(model, dir.string());
  for (const char* f : {"vocab.json", "merges.txt"})
    write_text(dir / f, read_file((fs::path(req.vocab_dir) / f).string(), "vocabulary file"));

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ojson m;
  m["format"] = kFormat;
  m["key"] = key;
  m["name"] = r.name;
  m["recipe"] = pretrain_recipe_to_json(r);
  m["corpus"] = fs::absolute(req.corpus).string();
  m["validation"] = req.validation.empty() ? "" : fs::absolute(req.validation).string();
  m["training_tokens"] = train.tokens.size();
  m["parameters"] = model.num_parameters();
  m["device"] = device.str();
  m["final_train_loss"] = res.losses.empty() ? 0.0 : res.losses.back();
  m["final_val_loss"] = std::isfinite(res.final_val_loss) ? ojson(res.final_val_loss) : ojson(nullptr);
  m["tokens_per_second"] = res.tokens_per_second;
  m["build_seconds"] = seconds;
  m["created"] = now_utc();
  write_text(dir / kMarker, m.dump(2) + "\n");  // last: its presence means the entry is complete
  return m;
}

std::string entry_dir(const ModelCacheRequest& req, const std::string& key) {
  const std::string root = req.root.empty() ? model_cache_root() : req.root;
  return (fs::path(root) / "models" / (req.recipe.name + "-" + key)).string();
}

}  // namespace

ojson pretrain_recipe_to_json(const PretrainRecipe& r) {
  const Gpt2Config& a = r.arch;
  const LmTrainConfig& t = r.train;
  ojson j;
  j["name"] = r.name;
  j["arch"] = {{"vocab_size", a.vocab_size}, {"n_positions", a.n_positions}, {"n_embd", a.n_embd},
               {"n_layer", a.n_layer},       {"n_head", a.n_head},           {"layer_norm_epsilon", a.layer_norm_epsilon}};
  j["train"] = {{"batch_size", t.batch_size},   {"seq_len", t.seq_len},         {"steps", t.steps},
                {"grad_accum", t.grad_accum},   {"warmup_steps", t.warmup_steps}, {"lr", t.lr},
                {"min_lr_ratio", t.min_lr_ratio}, {"weight_decay", t.weight_decay}, {"max_grad_norm", t.max_grad_norm},
                {"beta1", t.beta1},             {"beta2", t.beta2},             {"schedule", int(t.schedule)},
                {"seed", t.seed},               {"eval_batches", t.eval_batches}};
  j["init_seed"] = r.init_seed;
  j["max_corpus_bytes"] = r.max_corpus_bytes;
  return j;
}

std::string model_cache_root() {
  if (const char* c = std::getenv("ARIA_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "aria").string();
  const char* home = std::getenv("HOME");
  ARIA_CHECK(home && *home, "model cache: neither ARIA_CACHE nor HOME is set; set ARIA_CACHE to a writable folder");
  return (fs::path(home) / ".cache" / "aria").string();
}

std::string model_cache_key(const ModelCacheRequest& req) {
  Fnv h;
  h.add(kFormat);
  h.add(pretrain_recipe_to_json(req.recipe).dump());
  h.add(corpus_text(req.corpus, req.recipe.max_corpus_bytes));
  h.add(req.validation.empty() ? std::string() : read_file(req.validation, "validation text"));
  h.add(read_file(req.vocab_dir + "/vocab.json", "vocabulary"));
  h.add(read_file(req.vocab_dir + "/merges.txt", "merges"));
  return h.hex();
}

std::string model_cache_dir(const ModelCacheRequest& req) { return entry_dir(req, model_cache_key(req)); }

bool model_cache_complete(const std::string& dir, const std::string& key) {
  std::error_code ec;
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "merges.txt", kMarker})
    if (!fs::is_regular_file(fs::path(dir) / f, ec)) return false;
  try {
    const auto m = nlohmann::json::parse(read_file((fs::path(dir) / kMarker).string(), "marker"));
    return m.value("format", "") == kFormat && m.value("key", "") == key;
  } catch (const std::exception&) {
    return false;
  }
}

CachedModel ensure_cached_model(const ModelCacheRequest& req, Device device, std::ostream& log) {
  CachedModel c;
  c.key = model_cache_key(req);
  c.dir = entry_dir(req, c.key);
  const fs::path final_dir(c.dir);
  if (model_cache_complete(c.dir, c.key)) {
    c.marker = nlohmann::json::parse(read_file((final_dir / kMarker).string(), "marker"));
    c.build_seconds = c.marker.value("build_seconds", 0.0);
    return c;
  }
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    log << "model cache: " << c.dir << " is incomplete (an interrupted or damaged build): rebuilding it\n";
    fs::remove_all(final_dir, ec);
    ARIA_CHECK(!ec, "model cache: cannot remove the incomplete '", c.dir, "': ", ec.message());
  }
  fs::create_directories(final_dir.parent_path(), ec);
  ARIA_CHECK(!ec, "model cache: cannot create '", final_dir.parent_path().string(), "': ", ec.message(),
             " (set ARIA_CACHE to a writable folder)");
  remove_stale_temporaries(final_dir);
  const fs::path tmp = c.dir + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  ARIA_CHECK(!ec, "model cache: cannot create '", tmp.string(), "': ", ec.message());

  log << "model cache: pretraining cache:" << req.recipe.name << " (first use) on " << device.str() << " into "
      << c.dir << "\n";
  try {
    c.marker = build_into(req, c.key, tmp, device, log);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    // Another process finished the same entry first: use it.
    fs::remove_all(tmp, ec);
    ARIA_CHECK(model_cache_complete(c.dir, c.key), "model cache: cannot move the new model to '", c.dir, "'");
    c.marker = nlohmann::json::parse(read_file((final_dir / kMarker).string(), "marker"));
  }
  c.built = true;
  c.build_seconds = c.marker.value("build_seconds", 0.0);
  log << "model cache: cache:" << req.recipe.name << " ready in " << format_duration(c.build_seconds) << " ("
      << c.dir << ")\n";
  return c;
}

}  // namespace aria
