// The one thread that runs MLX. MLX 0.32 keeps streams per thread, so a graph must be built
// and evaluated on the same thread: every JS call that touches MLX is queued here and answered
// with a Promise, and the event loop never waits on MLX.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <napi.h>

namespace clara::binding {

// Runs on the JS thread once the work is done; builds the value the Promise resolves with.
using Completion = std::function<Napi::Value(Napi::Env)>;
// Runs on the MLX thread; never touches JS.
using Work = std::function<Completion()>;

class MlxThread {
 public:
  explicit MlxThread(Napi::Env env);
  ~MlxThread();
  MlxThread(const MlxThread&) = delete;
  MlxThread& operator=(const MlxThread&) = delete;

  Napi::Promise submit(Napi::Env env, Work work);
  // Fire and forget (e.g. freeing MLX arrays from a finalizer): runs in queue order, no result.
  void post(std::function<void()> task);

 private:
  struct Job;
  void loop();
  static void deliver(Napi::Env env, Napi::Function, Job* job);

  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  bool stopping_ = false;
  int in_flight_ = 0;  // touched on the JS thread only
};

}  // namespace clara::binding
