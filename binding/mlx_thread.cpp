#include "mlx_thread.h"

#include <optional>

#include "errors.h"

namespace clara::binding {

struct MlxThread::Job {
  Work work;
  Completion completion;
  std::exception_ptr error;
  std::optional<Napi::Promise::Deferred> deferred;  // empty for post()
  MlxThread* owner;
};

MlxThread::MlxThread(Napi::Env env) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                        "clara-mlx", 0, 1);
  tsfn_.Unref(env);  // an idle MLX thread must not keep Node alive
  thread_ = std::thread([this] { loop(); });
}

MlxThread::~MlxThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (Job* job : queue_) delete job;
  tsfn_.Release();
}

Napi::Promise MlxThread::submit(Napi::Env env, Work work) {
  auto* job = new Job{std::move(work), nullptr, nullptr, Napi::Promise::Deferred::New(env), this};
  Napi::Promise promise = job->deferred->Promise();
  if (in_flight_++ == 0) tsfn_.Ref(env);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(job);
  }
  wake_.notify_one();
  return promise;
}

void MlxThread::post(std::function<void()> task) {
  auto* job = new Job{[task = std::move(task)] {
                        task();
                        return Completion();
                      },
                      nullptr, nullptr, std::nullopt, this};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(job);
  }
  wake_.notify_one();
}

void MlxThread::loop() {
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
    }
    try {
      job->completion = job->work();
    } catch (...) {
      job->error = std::current_exception();
    }
    job->work = nullptr;  // free captured inputs here, on the thread that made MLX arrays of them
    if (!job->deferred) {
      delete job;
      continue;
    }
    if (tsfn_.BlockingCall(job, &MlxThread::deliver) != napi_ok) delete job;  // Node is shutting down
  }
}

void MlxThread::deliver(Napi::Env env, Napi::Function, Job* job) {
  std::unique_ptr<Job> owned(job);
  MlxThread* self = job->owner;
  if (--self->in_flight_ == 0) self->tsfn_.Unref(env);
  if (env == nullptr) return;
  Napi::HandleScope scope(env);
  try {
    if (job->error) {
      job->deferred->Reject(make_error(env, capture(job->error)));
    } else {
      job->deferred->Resolve(job->completion(env));
    }
  } catch (const Napi::Error& e) {
    job->deferred->Reject(e.Value());
  } catch (...) {
    job->deferred->Reject(make_error(env, capture(std::current_exception())));
  }
}

}  // namespace clara::binding
