#include "aria/train/experiment/model_cache.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>

#include "aria/core/context.h"
#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/gpt2.h"
#include "aria/model/tokenizer.h"
#include "aria/train/optim/lm_checkpoint.h"
#include "aria/train/report/lm_curve.h"
#include "aria/train/report/progress.h"
#include "aria/train/data/token_shards.h"

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

// The training (and validation) tokens of a request: its corpus text tokenized, or its shards mapped.
void load_data(const ModelCacheRequest& req, TokenDataset& train, TokenDataset& val, std::ostream& log) {
  const auto t0 = std::chrono::steady_clock::now();
  if (req.recipe.uses_shards) {
    ARIA_CHECK(!req.shards.empty(), "model cache: cache:", req.recipe.name, " trains on token shards, and none were given");
    train = load_shard_dataset(req.shards, "train", uint32_t(req.recipe.arch.vocab_size));
    if (!list_shards(req.shards, "validation").empty())
      val = load_shard_dataset(req.shards, "validation", uint32_t(req.recipe.arch.vocab_size));
  } else {
    const Gpt2Tokenizer tok = Gpt2Tokenizer::load(req.vocab_dir + "/vocab.json", req.vocab_dir + "/merges.txt");
    train.tokens = tok.encode(corpus_text(req.corpus, req.recipe.max_corpus_bytes));
    ARIA_CHECK(!train.tokens.empty(), "model cache: corpus '", req.corpus, "' gives no tokens");
    if (!req.validation.empty()) val.tokens = tok.encode(read_file(req.validation, "validation text"));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log << "model cache: " << (req.recipe.uses_shards ? "mapped " : "tokenized ") << train.size() << " training tokens"
      << (val.empty() ? "" : " and " + std::to_string(val.size()) + " validation tokens") << " in "
      << format_duration(seconds) << "\n";
}

// Pretrains the recipe's model into `dir` (which exists and is empty) and writes the marker last.
// Returns nothing when the recipe's stop_requested ended the build (checkpointed into `partial`
// when the recipe checkpoints).
std::optional<ojson> build_into(const ModelCacheRequest& req, const std::string& key, const fs::path& dir,
                                const fs::path& partial, Device device, std::ostream& log) {
  const PretrainRecipe& r = req.recipe;
  const auto t0 = std::chrono::steady_clock::now();
  TokenDataset train, val;
  load_data(req, train, val, log);

  Gpt2Model model = gpt2_random(r.arch, r.init_seed, device);
  LmTrainConfig tc = r.train;
  if (tc.checkpoint_every > 0) {
    tc.checkpoint_dir = partial.string();
    tc.resume = is_lm_checkpoint(tc.checkpoint_dir);
  }
  const LmTrainResult res = train_lm(model, train, val.empty() ? nullptr : &val, tc, log);
  if (res.stopped) return std::nullopt;
  gpt2_save(model, dir.string());
  for (const char* f : {"vocab.json", "merges.txt"})
    write_text(dir / f, read_file((fs::path(req.vocab_dir) / f).string(), "vocabulary file"));
  const ojson curve = lm_curve_json(res, "cache:" + r.name);
  write_text(dir / "curve.json", curve.dump(1) + "\n");
  write_text(dir / "curve.svg", lm_curve_svg(curve));

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ojson m;
  m["format"] = kFormat;
  m["key"] = key;
  m["name"] = r.name;
  m["recipe"] = pretrain_recipe_to_json(r);
  if (r.uses_shards) {
    m["shards"] = fs::absolute(req.shards).string();
  } else {
    m["corpus"] = fs::absolute(req.corpus).string();
    m["validation"] = req.validation.empty() ? "" : fs::absolute(req.validation).string();
  }
  m["training_tokens"] = train.size();
  m["validation_tokens"] = val.size();
  m["parameters"] = model.num_parameters();
  m["device"] = device.str();
  m["final_train_loss"] = res.losses.empty() ? 0.0 : res.losses.back();
  m["final_val_loss"] = std::isfinite(res.final_val_loss) ? ojson(res.final_val_loss) : ojson(nullptr);
  m["tokens_per_second"] = res.tokens_per_second;
  m["resumed_from_step"] = res.resumed_from;
  m["build_seconds"] = seconds;  // this process's part when the build was resumed
  m["train_seconds"] = res.train_seconds;  // every part's training time
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
  // Written only when set, so that the keys of recipes from before these fields stay the same.
  if (t.eval_every > 0) j["train"]["eval_every"] = t.eval_every;
  if (t.bf16) j["train"]["bf16"] = true;
  if (r.uses_shards) j["data"] = "shards";
  j["init_seed"] = r.init_seed;
  j["max_corpus_bytes"] = r.max_corpus_bytes;
  return j;
}

std::string model_cache_root() {
  const std::string& root = context().cache_dir;
  ARIA_CHECK(!root.empty(), "model cache: no cache folder (neither ARIA_CACHE nor HOME is set; set ARIA_CACHE to a "
             "writable folder, or aria::context().cache_dir)");
  return root;
}

std::string model_cache_key(const ModelCacheRequest& req) {
  Fnv h;
  h.add(kFormat);
  h.add(pretrain_recipe_to_json(req.recipe).dump());
  if (req.recipe.uses_shards) {
    // The headers' counts and checksums stand for the tokens (read_shard_header checks each file's size).
    ARIA_CHECK(!req.shards.empty(), "model cache: cache:", req.recipe.name, " trains on token shards, and none were given");
    for (const char* split : {"train", "validation"}) {
      const std::vector<std::string> files = list_shards(req.shards, split);
      ARIA_CHECK(!files.empty() || std::string(split) == "validation", "model cache: no ", split, " shards (",
                 split, "_*.bin) in '", req.shards, "'");
      for (const std::string& f : files) {
        const ShardHeader sh = read_shard_header(f);
        h.add(fs::path(f).filename().string() + " " + std::to_string(sh.vocab_size) + " " + std::to_string(sh.tokens) +
              " " + std::to_string(sh.checksum));
      }
    }
  } else {
    h.add(corpus_text(req.corpus, req.recipe.max_corpus_bytes));
    h.add(req.validation.empty() ? std::string() : read_file(req.validation, "validation text"));
  }
  h.add(read_file(req.vocab_dir + "/vocab.json", "vocabulary"));
  h.add(read_file(req.vocab_dir + "/merges.txt", "merges"));
  return h.hex();
}

std::string model_cache_dir(const ModelCacheRequest& req) { return entry_dir(req, model_cache_key(req)); }

std::string model_cache_partial_dir(const std::string& entry) { return entry + ".partial"; }

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
  ARIA_CHECK(!req.recipe.needs_cuda || device.is_cuda(), "cache:", req.recipe.name,
             " is pretrained on a CUDA GPU (sized for about 13 minutes on one H100; on ", device.str(),
             " it would take days) and is not built yet (", c.dir, "): run with --device cuda on a GPU machine "
             "(tools/gpu_base124m.sh), copy a built entry into the cache, or pass --model DIR");
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

  const fs::path partial = model_cache_partial_dir(c.dir);
  log << "model cache: pretraining cache:" << req.recipe.name << " (first use) on " << device.str() << " into "
      << c.dir << (is_lm_checkpoint(partial.string()) ? ", continuing from the checkpoint in " + partial.string() : "")
      << "\n";
  std::optional<ojson> marker;
  try {
    marker = build_into(req, c.key, tmp, partial, device, log);
  } catch (...) {
    fs::remove_all(tmp, ec);  // the checkpoint (if any) stays: the next call continues from it
    throw;
  }
  if (!marker) {
    fs::remove_all(tmp, ec);
    c.stopped = true;
    log << "model cache: cache:" << req.recipe.name << " stopped before it was complete"
        << (is_lm_checkpoint(partial.string()) ? "; the next use continues from " + partial.string() : "") << "\n";
    return c;
  }
  c.marker = std::move(*marker);
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    // Another process finished the same entry first: use it.
    fs::remove_all(tmp, ec);
    ARIA_CHECK(model_cache_complete(c.dir, c.key), "model cache: cannot move the new model to '", c.dir, "'");
    c.marker = nlohmann::json::parse(read_file((final_dir / kMarker).string(), "marker"));
  }
  fs::remove_all(partial, ec);
  c.built = true;
  c.build_seconds = c.marker.value("build_seconds", 0.0);
  log << "model cache: cache:" << req.recipe.name << " ready in " << format_duration(c.build_seconds) << " ("
      << c.dir << ")\n";
  return c;
}

}  // namespace aria
