// The method registry (train/continual/continual_method.h) and method_names().
#include "aria/train/continual/continual_method.h"

#include "aria/core/error.h"
#include "aria/train/continual/continual_trainer.h"

namespace aria {

namespace {

struct Plugin {
  MethodFactory factory;
  std::string base;
};

struct Registry {
  // The built-in five, then the ablations (issue 15): aria without one mechanism, finetune with adapters.
  std::vector<std::string> names = {"aria",          "finetune",         "ewc",
                                    "adapters",      "multitask",        "aria-no-gates",
                                    "aria-no-spc",   "aria-no-adapters", "aria-no-dampening",
                                    "finetune-adapters"};
  std::map<std::string, Plugin> plugins;
  Registry() {
    add("replay", make_replay_method, "finetune");
    add("lwf", make_lwf_method, "finetune");
  }
  void add(const std::string& name, MethodFactory f, const std::string& base) {
    for (const std::string& n : names) ARIA_CHECK(n != name, "register_method: method '", name, "' is already known");
    ARIA_CHECK(!name.empty(), "register_method: empty method name");
    ARIA_CHECK(f, "register_method: method '", name, "' has no factory");
    ARIA_CHECK(base == "finetune" || base == "adapters" || base == "ewc" || base == "aria", "register_method: method '",
               name, "': base '", base, "' is not one of aria, finetune, ewc, adapters");
    names.push_back(name);
    plugins[name] = Plugin{std::move(f), base};
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

const std::vector<std::string>& method_names() { return registry().names; }

void register_method(const std::string& name, MethodFactory factory, const std::string& base) {
  registry().add(name, std::move(factory), base);
}

bool is_plugin_method(const std::string& name) { return registry().plugins.count(name) > 0; }

const std::string& plugin_method_base(const std::string& name) {
  auto it = registry().plugins.find(name);
  ARIA_CHECK(it != registry().plugins.end(), "'", name, "' is not a registered plug-in method");
  return it->second.base;
}

std::unique_ptr<ContinualMethod> make_plugin_method(const std::string& name, const ContinualTrainer& t) {
  auto it = registry().plugins.find(name);
  ARIA_CHECK(it != registry().plugins.end(), "method '", name,
             "' is a plug-in that this program has not registered (register_method)");
  std::unique_ptr<ContinualMethod> m = it->second.factory(t);
  ARIA_CHECK(m != nullptr, "method '", name, "': its factory returned nothing");
  return m;
}

}  // namespace aria
