// Llama-family checkpoints (model/llama.h): save -> load bit-exact (single file, sharded with an index,
// float16/bfloat16), tied heads, and every checkpoint error (missing, unexpected, misshapen or
// non-finite tensors, broken indexes and shards), on the tiny models of tests/support/llama_tiny.h.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/model/llama.h"
#include "aria/model/safetensors.h"
#include "tests/support/llama_tiny.h"
#include "tests/support/test_util.h"

using namespace aria;
using json = nlohmann::json;
namespace fs = std::filesystem;
using testing::TempDir;
using testing::llama_family_name;
using testing::random_llama;
using testing::tiny_llama;

namespace {

void check_same_parameters(const LlamaModel& a, const LlamaModel& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i].first);
    CHECK(pa[i].first == pb[i].first);
    CHECK(testing::bit_equal(pa[i].second, pb[i].second));
  }
}

}  // namespace

TEST_CASE("llama save -> load is bit-exact: single file and sharded with an index, every family") {
  const Tensor ids = testing::random_ids({2, 9}, 37, 5);
  for (LlamaFamily f : testing::kLlamaFamilies) {
    CAPTURE(llama_family_name(f));
    const LlamaModel m = random_llama(tiny_llama(f), 21);
    NoGradGuard ng;
    const Tensor want = llama_logits(m, llama_hidden(m, ids));
    TempDir tmp("llama_rt");
    const std::string one = tmp.file("one"), sharded = tmp.file("sharded");
    llama_save(m, one);
    CHECK(fs::exists(one + "/model.safetensors"));
    llama_save(m, sharded, LlamaSaveOptions{.max_shard_bytes = 4000});
    CHECK(!fs::exists(sharded + "/model.safetensors"));
    const json index = json::parse(testing::read_file(sharded + "/model.safetensors.index.json"));
    std::set<std::string> shards;
    for (auto& [n, s] : index["weight_map"].items()) shards.insert(s.get<std::string>());
    CHECK(shards.size() >= 3);
    CHECK(index["weight_map"].size() == m.named_parameters().size());
    for (const std::string& dir : {one, sharded}) {
      CAPTURE(dir);
      const LlamaModel back = llama_load(dir);
      CHECK(back.config.family == f);
      check_same_parameters(m, back);
      CHECK(testing::bit_equal(llama_logits(back, llama_hidden(back, ids)), want));
    }
    // Tied: no lm_head.weight in the file; untied: there.
    CHECK((SafeTensorsFile::open(one + "/model.safetensors").find("lm_head.weight") != nullptr) ==
          !m.config.tie_word_embeddings);
  }
}

TEST_CASE("llama checkpoints in float16 and bfloat16 load as those dtypes, or converted") {
  const LlamaModel m = random_llama(tiny_llama(LlamaFamily::Llama), 31);
  for (DType dt : {DType::F16, DType::BF16}) {
    CAPTURE(dtype_name(dt));
    TempDir tmp("llama_dt");
    llama_save(m, tmp.dir.string(), LlamaSaveOptions{.dtype = dt});
    const json cfg = json::parse(testing::read_file(tmp.file("config.json")));
    CHECK(cfg["torch_dtype"] == (dt == DType::F16 ? "float16" : "bfloat16"));
    CHECK(SafeTensorsFile::open(tmp.file("model.safetensors")).find("model.norm.weight")->dtype == dt);
    check_same_parameters(m.to(dt), llama_load(tmp.dir.string(), Device::cpu(), LlamaLoadOptions{.dtype = dt}));
    check_same_parameters(m.to(dt).to(DType::F32), llama_load(tmp.dir.string()));
  }
}

TEST_CASE("llama checkpoints: tied heads, missing or misshapen tensors, bad indexes give clear errors") {
  const LlamaModel m = random_llama(tiny_llama(LlamaFamily::Qwen2), 41);  // tied, with biases
  TempDir tmp("llama_bad");
  const std::string dir = tmp.file("m");
  llama_save(m, dir);
  const std::string st = dir + "/model.safetensors";
  auto tensors = [&] {
    std::vector<std::pair<std::string, Tensor>> ts;
    for (auto& [n, t] : m.named_parameters()) ts.emplace_back(n, t);
    return ts;
  };
  auto rewrite = [&](const std::vector<std::pair<std::string, Tensor>>& ts) { save_safetensors(st, ts); };
  SUBCASE("a tied lm_head equal to the embedding loads, a different one is refused") {
    auto ts = tensors();
    ts.emplace_back("lm_head.weight", m.embed);
    rewrite(ts);
    CHECK_NOTHROW(llama_load(dir));
    ts.back().second = ops::scale(m.embed, 2.0);
    rewrite(ts);
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains("lm_head.weight differs from model.embed_tokens.weight"), Error);
  }
  SUBCASE("missing tensor") {
    auto ts = tensors();
    ts.erase(ts.begin() + 5);
    rewrite(ts);
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains(("missing tensor '" + tensors()[5].first + "'").c_str()), Error);
  }
  SUBCASE("wrong shape") {
    auto ts = tensors();
    for (auto& [n, t] : ts)
      if (n == "model.layers.1.self_attn.k_proj.weight") t = Tensor::zeros({16, 8});
    rewrite(ts);
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains("tensor 'model.layers.1.self_attn.k_proj.weight' has shape [16, 8], config.json implies [8, 16]"), Error);
  }
  SUBCASE("unexpected tensor: a layer beyond the config, an o_proj bias Qwen2 has not") {
    auto ts = tensors();
    ts.emplace_back("model.layers.2.input_layernorm.weight", Tensor::zeros({16}));
    rewrite(ts);
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains("unexpected tensor 'model.layers.2.input_layernorm.weight'"), Error);
    ts.back() = {"model.layers.0.self_attn.o_proj.bias", Tensor::zeros({16})};
    rewrite(ts);
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains("unexpected tensor 'model.layers.0.self_attn.o_proj.bias'"), Error);
  }
  SUBCASE("a NaN weight") {
    auto ts = tensors();
    Tensor bad = ts[3].second.detach().contiguous().to(DType::F32);
    bad = Tensor::from_floats(bad.to_floats(), bad.shape());
    static_cast<float*>(bad.raw_data())[2] = NAN;
    ts[3].second = bad;
    rewrite(ts);
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains(("'" + ts[3].first + "' holds a non-finite value at flat index 2").c_str()), Error);
    CHECK_NOTHROW(llama_load(dir, Device::cpu(), LlamaLoadOptions{.allow_nonfinite = true}));
  }
  SUBCASE("no checkpoint, no config, no folder") {
    fs::remove(st);
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains("has neither model.safetensors nor model.safetensors.index.json"), Error);
    fs::remove(dir + "/config.json");
    CHECK_THROWS_WITH_AS(llama_load(dir), doctest::Contains("has no config.json"), Error);
    CHECK_THROWS_WITH_AS(llama_load(tmp.file("nope")), doctest::Contains("does not exist"), Error);
  }
  SUBCASE("sharded: an index naming a missing shard, a shard lacking its tensor, an unmapped tensor") {
    const std::string sh = tmp.file("sh");
    llama_save(m, sh, LlamaSaveOptions{.max_shard_bytes = 3000});
    const std::string index_path = sh + "/model.safetensors.index.json";
    const json index = json::parse(testing::read_file(index_path));
    CHECK_NOTHROW(llama_load(sh));
    json j = index;
    j["weight_map"]["model.norm.weight"] = "model-00099-of-00099.safetensors";
    testing::write_file(index_path, j.dump());
    CHECK_THROWS_WITH_AS(llama_load(sh), doctest::Contains("shard 'model-00099-of-00099.safetensors' (holding 'model.norm.weight') does not exist"), Error);
    j = index;
    const std::string first = index["weight_map"]["model.embed_tokens.weight"];
    const std::string other = index["weight_map"]["model.norm.weight"];
    REQUIRE(first != other);
    j["weight_map"]["model.norm.weight"] = first;
    testing::write_file(index_path, j.dump());
    CHECK_THROWS_WITH_AS(llama_load(sh), doctest::Contains(("tensor 'model.norm.weight' is mapped to '" + first + "', which does not hold it").c_str()), Error);
    j = index;
    j["weight_map"].erase("model.norm.weight");
    testing::write_file(index_path, j.dump());
    CHECK_THROWS_WITH_AS(llama_load(sh), doctest::Contains("holds 'model.norm.weight', which the weight_map does not assign to it"), Error);
    j = index;
    j["weight_map"]["model.norm.weight"] = "../x.safetensors";
    testing::write_file(index_path, j.dump());
    CHECK_THROWS_WITH_AS(llama_load(sh), doctest::Contains("is not a file name in the model folder"), Error);
    testing::write_file(index_path, "{\"metadata\": {}}");
    CHECK_THROWS_WITH_AS(llama_load(sh), doctest::Contains("needs a 'weight_map' object"), Error);
    testing::write_file(index_path, "{oops");
    CHECK_THROWS_WITH_AS(llama_load(sh), doctest::Contains("not valid JSON"), Error);
  }
  SUBCASE("bad save options") {
    CHECK_THROWS_WITH_AS(llama_save(m, tmp.file("x"), LlamaSaveOptions{.dtype = DType::F64}),
                         doctest::Contains("dtype must be float32, float16 or bfloat16"), Error);
  }
}
