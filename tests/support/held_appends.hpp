#pragma once

// A real store whose appends can be held up, as on a stalled disk: while
// held, append_group waits (and the event store actor's thread with it, so
// every request behind the append waits too) until released. Everything
// else goes to the real store. For tests of a writer's append deadline.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "cadre/persistence/event_store.hpp"

namespace cadre::test {

class held_appends final : public persistence::event_store {
public:
  explicit held_appends(std::shared_ptr<persistence::event_store> real)
    : real_(std::move(real)) {
  }

  /// From now on appends wait until release().
  void hold() {
    std::lock_guard<std::mutex> guard{mx_};
    holding_ = true;
  }

  /// Lets every waiting append through, and later ones.
  void release() {
    std::lock_guard<std::mutex> guard{mx_};
    holding_ = false;
    cv_.notify_all();
  }

  /// Waits until an append is held, at most `bound`; false when none was.
  bool wait_held(std::chrono::seconds bound = std::chrono::seconds{60}) {
    std::unique_lock<std::mutex> lock{mx_};
    return cv_.wait_for(lock, bound, [this] { return waiting_ > 0; });
  }

  std::vector<expected<uint64_t>>
  append_group(const std::vector<append_request>& group) override {
    {
      std::unique_lock<std::mutex> lock{mx_};
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return !holding_; });
      --waiting_;
    }
    return real_->append_group(group);
  }
  bool read_only() const override {
    return real_->read_only();
  }
  expected<void> refresh() override {
    return real_->refresh();
  }
  expected<std::vector<event>> read(const std::string& id, uint64_t from,
                                    uint64_t max) const override {
    return real_->read(id, from, max);
  }
  expected<uint64_t> last_seq(const std::string& id) const override {
    return real_->last_seq(id);
  }
  expected<std::vector<execution_info>>
  list(const execution_filter& filter) const override {
    return real_->list(filter);
  }
  expected<execution_info> get(const std::string& id) const override {
    return real_->get(id);
  }
  expected<std::string>
  find_by_idempotency_key(const std::string& key) const override {
    return real_->find_by_idempotency_key(key);
  }
  expected<void> put_definition(const definition_record& def) override {
    return real_->put_definition(def);
  }
  expected<definition_record>
  get_definition(const std::string& name,
                 const std::string& version) const override {
    return real_->get_definition(name, version);
  }
  expected<std::vector<definition_record>>
  list_definitions(const std::string& name) const override {
    return real_->list_definitions(name);
  }
  expected<size_t> delete_definition(const std::string& name) override {
    return real_->delete_definition(name);
  }
  expected<uint64_t> erase_unindexed(const std::string& name) override {
    return real_->erase_unindexed(name);
  }
  expected<std::vector<std::string>> erase_killed_imports() override {
    return real_->erase_killed_imports();
  }
  expected<uint64_t>
  scan(const std::function<void(const event&)>& fn) const override {
    return real_->scan(fn);
  }

private:
  std::shared_ptr<persistence::event_store> real_;
  std::mutex mx_;
  std::condition_variable cv_;
  bool holding_ = false;
  int waiting_ = 0;
};

/// Releases the store's appends when the test ends, before the actors on
/// it are stopped (a held store actor would not stop): declare it after
/// them.
struct release_at_end {
  std::shared_ptr<held_appends> store;
  ~release_at_end() {
    if (store)
      store->release();
  }
};

} // namespace cadre::test
