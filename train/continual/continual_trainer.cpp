#include "aria/train/continual/continual_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/model/gated_mlp.h"
#include "aria/train/continual/continual_steps.h"
#include "aria/train/optim/grad_clip.h"
#include "aria/train/optim/param_groups.h"
#include "aria/train/report/progress.h"

namespace aria {

namespace {

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

}  // namespace

bool bf16_precision(const TrainSettings& t, Device device) {
  if (t.precision == "fp32") return false;
  if (t.precision == "bf16") {
    ARIA_CHECK(device.is_cuda(), "train.precision \"bf16\": bfloat16 training runs on CUDA only (the model is on ",
               device.str(), "); use \"fp32\" or \"auto\" there");
    return true;
  }
  ARIA_CHECK(t.precision == "auto", "train.precision must be one of auto, bf16, fp32, got \"", t.precision, "\"");
  // auto: bfloat16 where it is fast and supported (CUDA), the model's float32 on the CPU.
  return device.is_cuda();
}

namespace {

// Every parameter of m (trunk, gates, adapters, heads) in dtype dt, requires_grad kept.
void convert_model(ContinualModel& m, DType dt) {
  NoGradGuard no_grad;
  bool differs = false;
  for (const auto& np : m.gpt.named_parameters()) differs = differs || np.second.dtype() != dt;
  if (differs) m.gpt = m.gpt.to(dt);
  for (TaskSlot& s : m.tasks)
    for (Tensor* t : {&s.adapter.down_w, &s.adapter.down_b, &s.adapter.up_w, &s.adapter.up_b, &s.head_w}) {
      if (!t->defined() || t->dtype() == dt) continue;
      const bool rg = t->requires_grad();
      Tensor c = Tensor::empty(t->shape(), dt, t->device());
      c.copy_from(t->detach());
      if (rg) c.set_requires_grad(true);
      *t = c;
    }
}

}  // namespace

// method_names() and the plug-in registry: train/continual/continual_method.cpp.

MethodSpec method_spec(const std::string& name) {
  MethodSpec m;
  m.name = name;
  if (is_plugin_method(name)) {
    m = method_spec(plugin_method_base(name));
    m.name = name;
    m.plugin = true;
  } else if (name == "aria") {
    m.gated_mlp = m.adapters = m.spc = m.plasticity = m.dampening = m.asymmetric_lr = true;
    m.scope_from_settings = true;
  } else if (name == "finetune") {
  } else if (name == "ewc") {
    m.spc = true;
    m.fisher_scope = FisherScope::All;
  } else if (name == "adapters") {
    m.adapters = m.freeze_trunk = true;
  } else if (name == "multitask") {
    m.joint = true;
  } else if (name == "aria-no-gates") {
    // Plain MLPs (no gate, so no plasticity loss, dampening or slow group); adapters; SPC on the MLP
    // weights, the ones aria's slow pathway holds.
    m.adapters = m.spc = true;
    m.fisher_scope = FisherScope::Mlp;
  } else if (name == "aria-no-spc" || name == "aria-no-adapters" || name == "aria-no-dampening") {
    m = method_spec("aria");
    m.name = name;
    if (name == "aria-no-spc") m.spc = false;
    if (name == "aria-no-adapters") m.adapters = false;
    if (name == "aria-no-dampening") m.dampening = false;
  } else if (name == "finetune-adapters") {
    m.adapters = true;  // finetune with a task adapter before each head (trunk trained, no protection)
  } else {
    std::string known;
    for (const auto& n : method_names()) known += (known.empty() ? "" : ", ") + n;
    ARIA_FAIL("unknown method '", name, "' (known methods: ", known, ")");
  }
  return m;
}

ContinualTrainer::ContinualTrainer(ContinualModel model, const AriaSettings& aria, const TrainSettings& train,
                                   MethodSpec method, TrainerOptions options)
    : model_(std::move(model)),
      aria_(aria),
      train_(train),
      method_(std::move(method)),
      options_(options),
      rng_(train.seed ^ 0xA5A5C0FFEEull),
      fisher_rng_(train.seed ^ 0xF15E4F15E4ull) {
  ARIA_CHECK(train_.batch_size >= 1 && train_.grad_accum >= 1 && train_.steps_per_task >= 1,
             "ContinualTrainer: batch_size, grad_accum and steps_per_task must be >= 1");
  ARIA_CHECK(options_.warmup_fraction >= 0 && options_.warmup_fraction <= 1,
             "ContinualTrainer: warmup_fraction must be in [0, 1], got ", options_.warmup_fraction);
  bf16_ = bf16_precision(train_, model_.device());
  const bool has_gates = !model_.gpt.blocks.empty() && model_.gpt.blocks[0].gated != nullptr;
  if (method_.gated_mlp && !has_gates) inject_gated_mlp(model_.gpt, train_.seed, aria_.gate_init_std);
  // After the gates are injected (in the trunk's dtype), so that they are converted with it.
  if (bf16_) convert_model(model_, DType::BF16);
  else if (model_.gpt.dtype() == DType::BF16) convert_model(model_, DType::F32);
  ARIA_CHECK(method_.gated_mlp || !has_gates, "ContinualTrainer: method '", method_.name,
             "' trains a plain GPT-2, but the model has gated MLPs");
  if (model_.tasks.empty()) {
    model_.use_adapters = method_.adapters;
    model_.adapter_dim = aria_.adapter_dim;
  }
  ARIA_CHECK(model_.use_adapters == method_.adapters, "ContinualTrainer: method '", method_.name,
             (method_.adapters ? "' uses" : "' uses no"), " task adapters, the model's tasks were built otherwise");
  if (!model_.tasks.empty()) begin_phase({int(model_.tasks.size()) - 1});
  if (method_.plugin) plugin_ = make_plugin_method(method_.name, *this);
}

std::ostream& ContinualTrainer::log() const { return options_.log ? *options_.log : std::cerr; }

bool ContinualTrainer::gated() const { return !model_.gpt.blocks.empty() && model_.gpt.blocks[0].gated != nullptr; }

PlasticitySettings ContinualTrainer::plasticity_settings() const {
  return PlasticitySettings{aria_.plasticity_lambda, aria_.legacy_plasticity_loss, aria_.warmup_steps};
}

int ContinualTrainer::task_id(const std::string& name) const {
  for (size_t i = 0; i < model_.tasks.size(); ++i)
    if (model_.tasks[i].name == name) return int(i);
  return -1;
}

// A new phase: the optimizer over the groups of `tasks` (fresh moments, the previous optimizer's
// float32 masters of bfloat16 parameters), trainable flags to match.
void ContinualTrainer::begin_phase(std::vector<int> tasks) {
  trained_ = std::move(tasks);
  ParamGroupSettings s;
  s.lr = train_.lr;
  s.slow_lr_ratio = method_.asymmetric_lr ? aria_.slow_lr_ratio : 1.0;
  s.head_lr_mult = aria_.head_lr_mult;
  s.gate_lr_ratio = aria_.gate_lr_ratio;
  s.weight_decay = train_.weight_decay;
  s.freeze_trunk = method_.freeze_trunk;
  auto groups = build_param_groups(model_, trained_, s);
  apply_trainable(model_, groups);
  // No gradient outlives its phase: a parameter frozen now (an earlier task's head or adapter) would
  // otherwise keep its last gradient, and a checkpoint (which stores none) would resume differently.
  for (const auto& np : model_.named_parameters()) np.second.zero_grad();
  // The phase's schedule: per task (the joint phase: over all its steps), warmup then decay.
  const int64_t total = train_.steps_per_task * int64_t(trained_.size());
  const ScheduleConfig sched{options_.schedule, int64_t(std::llround(options_.warmup_fraction * double(total))), total,
                             options_.min_lr_ratio};
  OptimState previous = std::move(optim_);
  // The clipping norm measures the optimizer's parameters, in group order (trained_parameters()).
  optim_ = make_optim_state(std::move(groups), {}, sched, train_.lr, train_.max_grad_norm);
  optim_.run_step = previous.run_step;
  // bfloat16: the float32 masters carry over (fresh moments); a no-op for float32 parameters.
  if (previous.opt) optim_.opt->adopt_masters(*previous.opt);
}

std::vector<std::pair<std::string, Tensor>> ContinualTrainer::trained_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  if (optim_.opt)
    for (const ParamGroup& g : optim_.opt->groups()) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

int ContinualTrainer::add_task(const std::string& name, int num_labels) {
  const int id = model_.add_task(name, num_labels, rng_);
  begin_phase({id});
  if (plugin_) plugin_->on_task_start(*this, id);
  if (options_.verbose)
    log() << "add_task: task " << id << " '" << name << "' (" << num_labels << " labels), method " << method_.name
          << ", " << model_.num_parameters() << " parameters\n";
  return id;
}

ClsBatcher ContinualTrainer::make_batcher(int id, const std::vector<ClsExample>& data) const {
  ClsBatcher b(&data, train_.batch_size, train_.seed * 0x9E3779B97F4A7C15ull + uint64_t(id) + 1);
  auto it = batchers_.find(model_.tasks[size_t(id)].name);
  if (it != batchers_.end()) b.set_state(it->second);
  return b;
}

void ContinualTrainer::train(const ClsTaskData& task) { train_steps(task, train_.steps_per_task); }

int64_t ContinualTrainer::train_steps(const ClsTaskData& task, int64_t max_steps) {
  ARIA_CHECK(!method_.joint, "train: method '", method_.name, "' trains jointly; call train_joint");
  const int id = task_id(task.name);
  ARIA_CHECK(id >= 0, "train: task '", task.name, "' is not registered; call add_task first");
  ARIA_CHECK(trained_ == std::vector<int>{id}, "train: task '", task.name, "' (id ", id,
             ") is not the active task; only the last task added can be trained");
  ARIA_CHECK(task.num_labels() == model_.tasks[size_t(id)].num_labels, "train: task '", task.name, "' has ",
             task.num_labels(), " labels, registered with ", model_.tasks[size_t(id)].num_labels);
  return run_phase({&task}, max_steps);
}

void ContinualTrainer::train_joint(const std::vector<const ClsTaskData*>& tasks) {
  train_joint_steps(tasks, train_.steps_per_task * int64_t(tasks.size()));
}

int64_t ContinualTrainer::train_joint_steps(const std::vector<const ClsTaskData*>& tasks, int64_t max_steps) {
  ARIA_CHECK(method_.joint, "train_joint: method '", method_.name, "' trains one task at a time; call train");
  ARIA_CHECK(!tasks.empty(), "train_joint: no tasks");
  std::vector<int> ids;
  for (const ClsTaskData* t : tasks) {
    int id = task_id(t->name);
    if (id < 0) id = model_.add_task(t->name, t->num_labels(), rng_);
    ids.push_back(id);
  }
  if (trained_ != ids) begin_phase(ids);
  return run_phase(tasks, max_steps);
}

int64_t ContinualTrainer::run_phase(const std::vector<const ClsTaskData*>& tasks, int64_t max_steps) {
  const int64_t total = train_.steps_per_task * int64_t(trained_.size());
  const int64_t todo = std::min(max_steps, total - optim_.phase_step);
  if (todo <= 0) return 0;
  std::vector<ClsBatcher> batchers;
  for (size_t i = 0; i < tasks.size(); ++i) batchers.push_back(make_batcher(trained_[i], tasks[i]->train));
  std::string label = "train " + (tasks.size() == 1 ? "'" + tasks[0]->name + "'" : "joint");
  if (options_.verbose) {
    log() << label << ": " << method_.name << ", steps " << optim_.phase_step + 1 << ".." << optim_.phase_step + todo
          << " of " << total << " (batch " << train_.batch_size << " x accum " << train_.grad_accum << ")\n"
          << describe_param_groups(optim_.opt->groups());
  }
  Progress progress(log(), todo, label, options_.log_every);
  const auto t0 = std::chrono::steady_clock::now();
  double tokens = 0;
  const int ga = train_.grad_accum;
  const int n = int(tasks.size());
  const int32_t pad = pad_id_for(model_.gpt.config.vocab_size);
  const int64_t every = std::max<int64_t>(1, options_.log_every);
  std::vector<PendingStep> pending;
  for (int64_t s = 0; s < todo; ++s) {
    std::vector<Micro> micro;
    for (int k = 0; k < ga; ++k) {
      const int i = int((optim_.phase_step * ga + k) % n);
      micro.push_back({trained_[size_t(i)], batchers[size_t(i)].next(model_.device(), pad), tasks[size_t(i)]});
      if (options_.on_micro_batch) options_.on_micro_batch(micro.back().task, micro.back().batch);
    }
    // A report point (every log_every steps and the phase's last one) reads what the steps since the
    // last one left on the device; other steps read nothing.
    const bool stop = options_.stop_requested && options_.stop_requested();
    const bool report = stop || (s + 1) % every == 0 || s + 1 == todo;
    pending.push_back(optimizer_step(std::move(micro), report));  // advances optim_'s step counters
    for (size_t i = 0; i < tasks.size(); ++i) batchers_[tasks[i]->name] = batchers[i].state();
    if (!report) continue;
    read_pending(pending);
    for (const PendingStep& p : pending) tokens += double(p.stats.tokens);
    pending.clear();
    if (options_.on_report) options_.on_report(last_, optim_.phase_step, total);
    if (options_.verbose) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::string pi;
      for (double g : last_.gate_means) pi += (pi.empty() ? " | pi " : "/") + fmt("%.2f", g);
      progress.update(s + 1, "loss " + fmt("%.4f", last_.loss) + " | acc " + fmt("%.3f", last_.accuracy) + " | lr " +
                                 fmt("%.2e", last_.lr) + pi + " | " + fmt("%.0f", tokens / std::max(seconds, 1e-9)) +
                                 " tok/s");
    }
    if (stop) {
      if (options_.verbose) progress.finish();
      if (options_.verbose) log() << label << ": stopped on request after step " << optim_.phase_step << " of " << total << "\n";
      return s + 1;
    }
  }
  if (options_.verbose) progress.finish();
  return todo;
}

ContinualTrainer::PendingStep ContinualTrainer::optimizer_step(std::vector<Micro> micro, bool report) {
  PendingStep out;
  StepStats& st = out.stats;
  for (const Micro& m : micro) {
    st.examples += m.batch.ids.size(0);
    st.tokens += m.batch.real_tokens;
  }
  const PlasticitySettings ps = plasticity_settings();
  st.plasticity_on = method_.plasticity && gated() && plasticity_active(ps, optim_.run_step);
  const bool damp = method_.dampening && aria_.gradient_dampening && gated();
  GateStats gates;
  gates.reset(int(model_.gpt.blocks.size()));
  zero_grads(optim_);
  const Device dev = model_.device();
  out.correct = Tensor::zeros({1}, DType::F64, dev);
  for (size_t mi = 0; mi < micro.size(); ++mi) {
    const Micro& m = micro[mi];
    const ClsBatch& b = m.batch;
    // This forward's gate values (a plug-in's extra_loss may run forwards of its own: a replay batch,
    // a teacher; they cannot replace these).
    GateValues pis;
    Tensor logits = classify_logits(model_, b, m.task, ForwardOptions{gated() ? &pis : nullptr});
    if (gated()) gates.accumulate(pis, b.mask, b.real_tokens);
    // sum over this micro-batch / the step's example count: the step's mean once accumulated
    Tensor ce = ops::scale(ops::sum(ops::cross_entropy_rows(logits, b.labels)), 1.0 / double(st.examples));
    Tensor loss = ce;
    Tensor pl;
    if (st.plasticity_on) {
      pl = ps.legacy ? ops::scale(plasticity_loss(pis, b.mask, double(b.real_tokens), ps),
                                  double(b.ids.size(0)) / double(st.examples))
                     : plasticity_loss(pis, b.mask, double(st.tokens), ps);
      loss = ops::add(loss, pl);
    }
    Tensor extra;
    if (plugin_) {
      MethodMicroBatch mb;
      mb.task = m.task;
      mb.batch = &b;
      mb.logits = &logits;
      mb.data = m.data;
      mb.step_examples = double(st.examples);
      mb.phase_step = optim_.phase_step;
      mb.micro_index = int(mi);
      extra = plugin_->extra_loss(*this, mb);
      if (extra.defined()) loss = ops::add(loss, extra);
    }
    if (options_.extra_loss) {  // the caller's term, after the plug-in's (both count as method_loss)
      LossTermInput in;
      in.task = m.task, in.batch = &b, in.logits = &logits, in.loss = &loss, in.data = m.data;
      in.step_examples = double(st.examples), in.phase_step = optim_.phase_step, in.micro_index = int(mi);
      Tensor term;
      loss = add_extra_loss(options_, loss, in, &term);
      if (term.defined()) extra = extra.defined() ? ops::add(extra, term) : term;
    }
    {
      NoGradGuard no_grad;  // the step's statistics, summed on the device
      out.ce = out.ce.defined() ? ops::add(out.ce, ce.detach()) : ce.detach();
      if (pl.defined()) out.plasticity = out.plasticity.defined() ? ops::add(out.plasticity, pl.detach()) : pl.detach();
      if (extra.defined()) {
        const Tensor e = extra.detach().to(DType::F64).reshape({1});
        out.extra = out.extra.defined() ? ops::add(out.extra, e) : e;
      }
      ops::count_correct_into(logits.detach(), b.labels, out.correct);
    }
    loss.backward();
  }
  // The SPC/EWC penalty's value is read at report points only (its gradient never needs it).
  if (method_.spc && spc_.tasks_consolidated() > 0) {
    if (report) st.spc = spc_.penalty(model_, aria_.spc_lambda);
    spc_.add_penalty_grad(model_, aria_.spc_lambda);
  }
  if (damp) dampen_slow_grads(model_.gpt, gates);
  if (gated()) out.gates = std::move(gates);
  // The norm of what this step updates (optim_.params: the optimizer's parameters; gradients of
  // parameters outside the optimizer never count). Clipped on the device: a non-finite norm (a
  // non-finite loss gives one: the cross-entropy is the loss guard) skips the update there, and
  // read_pending() turns it into an error naming the step.
  const IssuedStep issued = aria::optimizer_step(optim_, 1, out.ce);
  out.sumsq = issued.sumsq;
  if (plugin_) plugin_->after_step(*this);
  st.step = issued.step;
  st.lr = issued.lr;
  return out;
}

// One read for every value the pending steps left on the device; fills their StepStats (last_ is the
// last one) and stops training at the first step whose gradient norm or loss was not finite (in that
// order, as the checks always came).
void ContinualTrainer::read_pending(std::vector<PendingStep>& steps) {
  std::vector<Tensor> flat;
  const Device dev = model_.device();
  const Tensor none = Tensor::zeros({1}, DType::F64, dev);
  auto f64 = [&](const Tensor& t) { return t.defined() ? t.detach().to(DType::F64).reshape({1}) : none; };
  for (const PendingStep& p : steps) {
    flat.push_back(f64(p.ce));
    flat.push_back(f64(p.plasticity));
    flat.push_back(f64(p.correct));
    flat.push_back(f64(p.sumsq));
    flat.push_back(f64(p.extra));
    for (int l = 0; l < p.gates.layers(); ++l) flat.push_back(f64(p.gates.sum(l)));
  }
  const std::vector<double> v = ops::concat(flat, 0).to_doubles();
  size_t k = 0;
  for (PendingStep& p : steps) {
    StepStats& st = p.stats;
    st.ce = v[k++];
    st.plasticity = v[k++];
    st.accuracy = v[k++] / double(st.examples);
    const double sumsq = v[k++];
    st.method_loss = v[k++];
    st.grad_norm = std::sqrt(sumsq);
    for (int l = 0; l < p.gates.layers(); ++l) st.gate_means.push_back(v[k++] / p.gates.tokens());
    st.loss = st.ce + st.plasticity + st.spc + st.method_loss;
    if (!std::isfinite(st.grad_norm)) {
      try {
        grad_norm_from(Tensor::full({1}, sumsq, DType::F64, Device::cpu()), trained_parameters());
      } catch (const Error& e) {
        ARIA_FAIL("step ", st.step, ": ", e.what());
      }
    }
    ARIA_CHECK(std::isfinite(st.ce), "non-finite training loss at step ", st.step);
    last_ = st;
  }
}

void ContinualTrainer::consolidate_task(int id, const ClsTaskData& task) {
  ARIA_CHECK(id >= 0 && id < int(model_.tasks.size()), "consolidate_task: task id ", id, " outside [0, ",
             model_.tasks.size(), ")");
  ARIA_CHECK(model_.tasks[size_t(id)].name == task.name, "consolidate_task: task ", id, " is '",
             model_.tasks[size_t(id)].name, "', the data given is '", task.name, "'");
  if (plugin_) plugin_->on_consolidate(*this, id, task);
  if (!method_.spc) {
    if (options_.verbose && !plugin_)
      log() << "consolidate '" << task.name << "': method " << method_.name << " has no consolidation\n";
    return;
  }
  ConsolidationSettings cs;
  cs.batch_size = train_.batch_size;
  cs.max_batches = aria_.consolidation_steps_per_task;
  cs.estimator = parse_fisher_estimator(aria_.fisher_estimator);
  cs.scope = method_.scope_from_settings ? parse_fisher_scope(aria_.fisher_scope) : method_.fisher_scope;
  cs.spc_gamma = aria_.spc_gamma;
  const auto t0 = std::chrono::steady_clock::now();
  const FisherResult r = consolidate_task_state(model_, spc_, fisher_rng_, id, task, cs, options_.on_fisher);
  if (options_.verbose)
    log() << "consolidate '" << task.name << "': " << r.description << ", on the training split, "
          << fmt("%.2f", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) << "s ("
          << spc_.tasks_consolidated() << " tasks consolidated)\n";
}

double ContinualTrainer::accuracy(int id, const std::vector<ClsExample>& data) const {
  ARIA_CHECK(id >= 0 && id < int(model_.tasks.size()), "accuracy: task id ", id, " outside [0, ", model_.tasks.size(), ")");
  return fraction_correct(task_correct(model_, id, data, train_.batch_size));
}

std::vector<double> ContinualTrainer::evaluate_tasks(const std::vector<const ClsTaskData*>& tasks,
                                                     const std::string& split) const {
  std::vector<double> row;
  for (const std::string& c : evaluate_tasks_correct(tasks, split)) row.push_back(fraction_correct(c));
  return row;
}

std::vector<std::string> ContinualTrainer::evaluate_tasks_correct(const std::vector<const ClsTaskData*>& tasks,
                                                                  const std::string& split) const {
  return evaluate_correct(model_, tasks, split.empty() ? train_.eval_split : split, train_.batch_size, train_.seed);
}

std::vector<std::vector<double>> ContinualTrainer::evaluate_all_tasks(const std::vector<const ClsTaskData*>& tasks,
                                                                      const std::string& split) {
  std::vector<std::string> c = evaluate_tasks_correct(tasks, split);
  std::vector<double> row;
  for (const std::string& x : c) row.push_back(fraction_correct(x));
  if (options_.on_evaluation) options_.on_evaluation(optim_.run_step, row);
  history_.push_back(std::move(row));
  correct_history_.push_back(std::move(c));
  return history_;
}

}  // namespace aria
