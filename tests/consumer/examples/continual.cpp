// tests/consumer/examples/continual.cpp: ARIA on a sequence of classification tasks, from C++.
// A ContinualModel wraps a loaded GPT-2 (gated MLPs injected for "aria"); tasks are task folders
// (docs/data.md) read by load_cls_task. The accuracy matrix gives ACC, BWT, forgetting and FWT.
#include <aria/aria.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: continual MODEL_DIR VOCAB_DIR TASK_DIR... OUT_DIR\n");
    return 2;
  }
  const std::string model_dir = argv[1], vocab_dir = argv[2], out = argv[argc - 1];
  auto tok = aria::Gpt2Tokenizer::load(vocab_dir + "/vocab.json", vocab_dir + "/merges.txt");
  aria::AriaSettings aria_settings;  // train/continual/aria_config.h: the spec's defaults, made small here
  aria_settings.warmup_steps = 4;
  aria_settings.adapter_dim = 8;
  aria_settings.consolidation_steps_per_task = 3;
  aria::TrainSettings train;
  train.lr = 3e-3;
  train.batch_size = 4;
  train.steps_per_task = 12;
  train.max_seq_len = 32;

  std::vector<aria::ClsTaskData> tasks;
  for (int i = 3; i < argc - 1; ++i)
    tasks.push_back(aria::load_cls_task(argv[i], tok, train.max_seq_len, /*max_train=*/0, /*max_eval=*/0));
  std::vector<const aria::ClsTaskData*> all;
  for (const aria::ClsTaskData& t : tasks) all.push_back(&t);

  aria::ContinualModel model;
  model.gpt = aria::gpt2_load(model_dir);
  aria::inject_gated_mlp(model.gpt, /*seed=*/1);
  model.adapter_dim = aria_settings.adapter_dim;
  aria::ContinualTrainer t(std::move(model), aria_settings, train, aria::method_spec("aria"));
  const std::vector<double> before = t.evaluate_all_tasks(all).back();  // b[j]: before any training
  aria::AccMatrix a;                                                      // a[i][j]: after task i
  for (const aria::ClsTaskData* task : all) {
    int id = t.add_task(task->name, task->num_labels());
    t.train(*task);
    t.consolidate_task(id, *task);  // per-sample Fisher on the task's training data
    a.push_back(t.evaluate_all_tasks(all).back());
  }
  const aria::ClMetrics m = aria::compute_cl_metrics(a, before);
  std::printf("ACC %.3f  BWT %+.3f  forgetting %.3f  FWT %+.3f\n", m.acc, m.bwt, m.forgetting, m.fwt);
  t.save(out);  // model, adapters, heads, optimizer moments, Fisher buffers, counters, RNG
}
