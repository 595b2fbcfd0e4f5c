// GPT-2 config.json: real HF configs parse, anything aria cannot run is rejected naming the key,
// and what we write reads back (and carries the keys transformers needs).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "aria/core/error.h"
#include "aria/model/gpt2_config.h"
#include "tests/support/test_util.h"

using namespace aria;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case; write() defaults to config.json.
struct TempDir : testing::TempDir {
  TempDir() : testing::TempDir("aria_cfg_") {}
  std::string write(const std::string& text, const std::string& name = "config.json") const {
    return testing::TempDir::write(text, name);
  }
};

// The config.json of HF's "gpt2" (124M), as published.
const char* kHfGpt2 = R"({
  "activation_function": "gelu_new",
  "architectures": [
    "GPT2LMHeadModel"
  ],
  "attn_pdrop": 0.1,
  "bos_token_id": 50256,
  "embd_pdrop": 0.1,
  "eos_token_id": 50256,
  "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2",
  "n_ctx": 1024,
  "n_embd": 768,
  "n_head": 12,
  "n_layer": 12,
  "n_positions": 1024,
  "resid_pdrop": 0.1,
  "summary_activation": null,
  "summary_first_dropout": 0.1,
  "summary_proj_to_labels": true,
  "summary_type": "cls_index",
  "summary_use_proj": true,
  "task_specific_params": {
    "text-generation": {
      "do_sample": true,
      "max_length": 50
    }
  },
  "vocab_size": 50257
})";

// distilgpt2: 6 layers, plus label maps from its classification heritage.
const char* kHfDistilGpt2 = R"({
  "_num_labels": 1,
  "activation_function": "gelu_new",
  "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1,
  "bos_token_id": 50256,
  "embd_pdrop": 0.1,
  "eos_token_id": 50256,
  "id2label": {"0": "LABEL_0"},
  "initializer_range": 0.02,
  "label2id": {"LABEL_0": 0},
  "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2",
  "n_ctx": 1024,
  "n_embd": 768,
  "n_head": 12,
  "n_layer": 6,
  "n_positions": 1024,
  "resid_pdrop": 0.1,
  "summary_activation": null,
  "summary_first_dropout": 0.1,
  "summary_proj_to_labels": true,
  "summary_type": "cls_index",
  "summary_use_proj": true,
  "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257
})";

// kHfGpt2 with one key replaced (or added) by `key: value_json`.
std::string gpt2_with(const std::string& key, const std::string& value_json) {
  nlohmann::json j = nlohmann::json::parse(kHfGpt2);
  j[key] = nlohmann::json::parse(value_json);
  return j.dump();
}

std::string gpt2_without(const std::string& key) {
  nlohmann::json j = nlohmann::json::parse(kHfGpt2);
  j.erase(key);
  return j.dump();
}

// Loading `text` as config.json throws an aria::Error containing `needle`.
void check_rejected(const TempDir& td, const std::string& text, const std::string& needle) {
  CAPTURE(text);
  CHECK_THROWS_WITH_AS(load_gpt2_config(td.write(text)), doctest::Contains(needle.c_str()), aria::Error);
}

}  // namespace

TEST_CASE("gpt2 config: HF gpt2 and distilgpt2") {
  TempDir td;
  Gpt2Config c = load_gpt2_config(td.write(kHfGpt2));
  CHECK(c.vocab_size == 50257);
  CHECK(c.n_positions == 1024);
  CHECK(c.n_embd == 768);
  CHECK(c.n_layer == 12);
  CHECK(c.n_head == 12);
  CHECK(c.head_dim() == 64);
  CHECK(c.layer_norm_epsilon == 1e-5);
  CHECK(c.activation_function == "gelu_new");
  CHECK(c.tie_word_embeddings);
  CHECK(c.num_parameters() == 124439808);  // HF's count for gpt2

  Gpt2Config d = load_gpt2_config(td.write(kHfDistilGpt2, "distil.json"));
  CHECK(d.n_layer == 6);
  CHECK(d.n_embd == 768);
  CHECK(d.num_parameters() == 81912576);
}

TEST_CASE("gpt2 config: n_ctx fallback, defaults, other tanh GELU names") {
  TempDir td;
  Gpt2Config c = load_gpt2_config(td.write(gpt2_with("n_ctx", "512")));
  CHECK(c.n_positions == 1024);  // n_positions wins when both are present
  nlohmann::json j = nlohmann::json::parse(gpt2_without("n_positions"));
  j["n_ctx"] = 256;
  CHECK(load_gpt2_config(td.write(j.dump())).n_positions == 256);

  Gpt2Config m = load_gpt2_config(td.write(R"({"model_type": "gpt2", "n_layer": 3})"));
  CHECK(m.n_layer == 3);
  CHECK(m.n_embd == 768);
  CHECK(load_gpt2_config(td.write("{}")).n_layer == 12);  // model_type may be absent

  CHECK(load_gpt2_config(td.write(gpt2_with("activation_function", "\"gelu_pytorch_tanh\""))).activation_function ==
        "gelu_pytorch_tanh");
  CHECK(load_gpt2_config(td.write(gpt2_with("activation_function", "\"gelu_fast\""))).activation_function ==
        "gelu_fast");
  CHECK(load_gpt2_config(td.write(gpt2_with("n_inner", "3072"))).n_embd == 768);
  CHECK(load_gpt2_config(td.write(gpt2_with("n_inner", "null"))).n_embd == 768);
  CHECK(load_gpt2_config(td.write(gpt2_with("layer_norm_epsilon", "1e-6"))).layer_norm_epsilon == 1e-6);
}

TEST_CASE("gpt2 config: malformed files") {
  TempDir td;
  CHECK_THROWS_WITH_AS(load_gpt2_config((td.dir / "missing.json").string()), doctest::Contains("does not exist"),
                       aria::Error);
  // A directory or a FIFO is refused before open() (a FIFO would block it forever).
  CHECK_THROWS_WITH_AS(load_gpt2_config(td.dir.string()), doctest::Contains("is a directory, not a regular file"),
                       aria::Error);
  const std::string fifo = td.file("fifo.json");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string want = "gpt2 config '" + fifo + "' is a FIFO";
  CHECK_THROWS_WITH_AS(load_gpt2_config(fifo), doctest::Contains(want.c_str()), aria::Error);
  CHECK_THROWS_WITH_AS(load_gpt2_config(td.write("{\"n_embd\": 768,")), doctest::Contains("not valid JSON"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(load_gpt2_config(td.write("")), doctest::Contains("not valid JSON"), aria::Error);
  CHECK_THROWS_WITH_AS(load_gpt2_config(td.write("[1, 2]")), doctest::Contains("must be a JSON object"),
                       aria::Error);
  const std::string p = td.write("{\"n_embd\": 768,");
  CHECK_THROWS_WITH_AS(load_gpt2_config(p), doctest::Contains(p.c_str()), aria::Error);  // names the file
}

TEST_CASE("gpt2 config: wrong types and ranges name the key") {
  TempDir td;
  check_rejected(td, gpt2_with("n_embd", "\"768\""), "'n_embd' must be an integer");
  check_rejected(td, gpt2_with("n_embd", "768.0"), "'n_embd' must be an integer");
  check_rejected(td, gpt2_with("n_layer", "true"), "'n_layer' must be an integer");
  check_rejected(td, gpt2_with("n_head", "null"), "'n_head' must be an integer");
  check_rejected(td, gpt2_with("vocab_size", "0"), "'vocab_size' = 0 is out of range");
  check_rejected(td, gpt2_with("n_layer", "-3"), "'n_layer' = -3 is out of range");
  check_rejected(td, gpt2_with("n_positions", "1000001"), "'n_positions' = 1000001 is out of range");
  check_rejected(td, gpt2_with("vocab_size", "18446744073709551615"),
                 "'vocab_size' = 18446744073709551615 is out of range");
  check_rejected(td, gpt2_with("n_embd", "1e30"), "'n_embd' must be an integer");
  {
    nlohmann::json j = nlohmann::json::parse(gpt2_without("n_positions"));
    j["n_ctx"] = "1024";
    check_rejected(td, j.dump(), "'n_ctx' must be an integer");
  }
  check_rejected(td, gpt2_with("layer_norm_epsilon", "\"1e-5\""), "'layer_norm_epsilon' must be a number");
  check_rejected(td, gpt2_with("layer_norm_epsilon", "0"), "'layer_norm_epsilon' = 0 must be in (0, 1)");
  check_rejected(td, gpt2_with("layer_norm_epsilon", "-1e-5"), "'layer_norm_epsilon'");
  check_rejected(td, gpt2_with("layer_norm_epsilon", "1"), "'layer_norm_epsilon' = 1 must be in (0, 1)");
  check_rejected(td, gpt2_with("activation_function", "1"), "'activation_function' must be a string");
  check_rejected(td, gpt2_with("tie_word_embeddings", "1"), "'tie_word_embeddings' must be true or false");
  check_rejected(td, gpt2_with("model_type", "\"llama\""), "'model_type' must be \"gpt2\"");
  check_rejected(td, gpt2_with("model_type", "2"), "'model_type' must be \"gpt2\"");
}

TEST_CASE("gpt2 config: unsupported architectures are rejected clearly") {
  TempDir td;
  check_rejected(td, gpt2_with("n_head", "5"), "'n_embd' = 768 is not divisible by 'n_head' = 5");
  check_rejected(td, gpt2_with("activation_function", "\"gelu\""), "aria implements the tanh GELU only");
  check_rejected(td, gpt2_with("activation_function", "\"relu\""), "'activation_function' = 'relu' is not supported");
  check_rejected(td, gpt2_with("tie_word_embeddings", "false"), "'tie_word_embeddings' = false is not supported");
  check_rejected(td, gpt2_with("n_inner", "1024"), "'n_inner' = 1024 is not supported");
  check_rejected(td, gpt2_with("scale_attn_weights", "false"), "'scale_attn_weights' = false");
  check_rejected(td, gpt2_with("scale_attn_by_inverse_layer_idx", "true"), "'scale_attn_by_inverse_layer_idx' = true");
  check_rejected(td, gpt2_with("add_cross_attention", "true"), "'add_cross_attention' = true");
}

TEST_CASE("gpt2 config: save -> load roundtrip and HF keys") {
  TempDir td;
  for (const char* name : {"d12", "d24", "d36", "d48", "tiny", "small-cpu"}) {
    CAPTURE(name);
    Gpt2Config c = gpt2_preset(name);
    c.layer_norm_epsilon = 1e-6;
    c.activation_function = "gelu_pytorch_tanh";
    const std::string p = (td.dir / (std::string(name) + ".json")).string();
    save_gpt2_config(c, p);
    Gpt2Config r = load_gpt2_config(p);
    CHECK(r.vocab_size == c.vocab_size);
    CHECK(r.n_positions == c.n_positions);
    CHECK(r.n_embd == c.n_embd);
    CHECK(r.n_layer == c.n_layer);
    CHECK(r.n_head == c.n_head);
    CHECK(r.layer_norm_epsilon == c.layer_norm_epsilon);
    CHECK(r.activation_function == c.activation_function);
    CHECK(r.tie_word_embeddings);
  }

  const std::string p = (td.dir / "hf.json").string();
  save_gpt2_config(gpt2_preset("tiny"), p);
  std::ifstream in(p);
  nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["model_type"] == "gpt2");
  CHECK(j["architectures"] == nlohmann::json::array({"GPT2LMHeadModel"}));
  CHECK(j["n_ctx"] == 128);
  CHECK(j["n_positions"] == 128);
  CHECK(j["n_embd"] == 64);
  CHECK(j["n_layer"] == 2);
  CHECK(j["n_head"] == 4);
  CHECK(j["vocab_size"] == 50257);
  CHECK(j["bos_token_id"] == 50256);
  CHECK(j["eos_token_id"] == 50256);
  CHECK(j["resid_pdrop"] == 0.1);
  CHECK(j["embd_pdrop"] == 0.1);
  CHECK(j["attn_pdrop"] == 0.1);
  CHECK(j["initializer_range"] == 0.02);
  CHECK(j["torch_dtype"] == "float32");
  CHECK(j["tie_word_embeddings"] == true);
  CHECK(j["scale_attn_weights"] == true);
  CHECK(j["n_inner"].is_null());
  CHECK(j["activation_function"] == "gelu_new");
  CHECK(j["layer_norm_epsilon"] == 1e-5);
  // no temporary file left behind
  int files = 0;
  for (const auto& e : fs::directory_iterator(td.dir)) (void)e, ++files;
  CHECK(files == 7);

  Gpt2Config bad = gpt2_preset("tiny");
  bad.n_head = 3;
  CHECK_THROWS_WITH_AS(save_gpt2_config(bad, p), doctest::Contains("not divisible"), aria::Error);
}

TEST_CASE("gpt2 config: presets") {
  CHECK(gpt2_preset("d12").num_parameters() == 124439808);
  CHECK(gpt2_preset("d24").num_parameters() == 354823168);
  CHECK(gpt2_preset("d36").num_parameters() == 774030080);
  CHECK(gpt2_preset("d48").num_parameters() == 1557611200);
  Gpt2Config d48 = gpt2_preset("d48");
  CHECK(d48.head_dim() == 64);
  Gpt2Config tiny = gpt2_preset("tiny");
  CHECK(tiny.n_layer == 2);
  CHECK(tiny.n_embd == 64);
  CHECK(tiny.n_head == 4);
  CHECK(tiny.n_positions == 128);
  CHECK(tiny.vocab_size == 50257);
  Gpt2Config sc = gpt2_preset("small-cpu");
  CHECK(sc.n_layer == 4);
  CHECK(sc.n_embd == 128);
  CHECK(sc.n_head == 4);
  CHECK(sc.n_positions == 256);
  for (const char* n : {"d12", "d24", "d36", "d48", "tiny", "small-cpu"})
    CHECK_NOTHROW(validate_gpt2_config(gpt2_preset(n)));
  CHECK_THROWS_WITH_AS(gpt2_preset("gpt2-xl"), doctest::Contains("d12, d24, d36, d48, tiny, small-cpu"), aria::Error);
}

TEST_CASE("gpt2 config: sizes each in range but absurd together are refused before anything is allocated") {
  // n_layer = 1e6 at GPT-2's width: 7e12 parameters (a random init would try to allocate 28 TB).
  Gpt2Config c = gpt2_preset("d12");
  c.n_layer = 1000000;
  CHECK_THROWS_WITH_AS(validate_gpt2_config(c),
                       doctest::Contains("n_layer = 1000000, n_embd = 768, vocab_size = 50257, n_positions = 1024 "
                                         "imply 7.09e+12 parameters"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(validate_gpt2_config(c), doctest::Contains("more than the 1e+11 aria accepts"), aria::Error);
  // Where the int64 count would overflow, the bound still holds.
  c.n_embd = c.vocab_size = c.n_positions = 1000000;
  c.n_head = 1;
  CHECK_THROWS_WITH_AS(validate_gpt2_config(c), doctest::Contains("1.2e+19 parameters"), aria::Error);
  // From a file: named with the file.
  TempDir td;
  const std::string p = td.write(gpt2_with("n_layer", "1000000"));
  const std::string want = "gpt2 config '" + p + "': gpt2 config: n_layer = 1000000";
  CHECK_THROWS_WITH_AS(load_gpt2_config(p), doctest::Contains(want.c_str()), aria::Error);
  // The largest real GPT-2 (and a deep narrow one) pass.
  CHECK_NOTHROW(validate_gpt2_config(gpt2_preset("d48")));
  Gpt2Config deep = gpt2_preset("tiny");
  deep.n_layer = 1000000;
  deep.n_embd = 8;
  deep.n_head = 1;
  CHECK_NOTHROW(validate_gpt2_config(deep));
}

TEST_CASE("gpt2 config: save errors name the file and the OS's reason, and leave no temporary") {
  TempDir td;
  const std::string missing_dir = (td.dir / "no" / "config.json").string();
  CHECK_THROWS_WITH_AS(save_gpt2_config(gpt2_preset("tiny"), missing_dir),
                       doctest::Contains(("gpt2 config '" + missing_dir + "': cannot create").c_str()), aria::Error);
  CHECK_THROWS_WITH_AS(save_gpt2_config(gpt2_preset("tiny"), missing_dir),
                       doctest::Contains("No such file or directory"), aria::Error);
  // A folder in the way of the rename: the error names it, and the temporary is removed.
  fs::create_directories(td.dir / "taken" / "config.json" / "x");
  const std::string taken = (td.dir / "taken" / "config.json").string();
  CHECK_THROWS_WITH_AS(save_gpt2_config(gpt2_preset("tiny"), taken), doctest::Contains("cannot rename"), aria::Error);
  int files = 0;
  for (const auto& e : fs::directory_iterator(td.dir / "taken")) (void)e, ++files;
  CHECK(files == 1);
}
