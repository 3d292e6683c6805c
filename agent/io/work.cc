#include "agent/io/work.h"

#include "agent/io/uv_status.h"

namespace gossync::io {
namespace {

struct WorkRequest {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> after;
};

}  // namespace

Status QueueWork(uv_loop_t* loop, std::function<void()> work, std::function<void()> after) {
  auto w = std::make_unique<WorkRequest>();
  w->work = std::move(work);
  w->after = std::move(after);
  w->req.data = w.get();
  int rc = uv_queue_work(
      loop, &w->req,
      [](uv_work_t* req) noexcept {
        auto* self = static_cast<WorkRequest*>(req->data);
        if (self->work) self->work();
      },
      [](uv_work_t* req, int) noexcept {
        std::unique_ptr<WorkRequest> own(static_cast<WorkRequest*>(req->data));
        if (own->after) own->after();
      });
  if (rc < 0) return UvError("queue work", rc);
  w.release();  // the after callback frees it
  return Status::Ok();
}

struct Strand::State {
  uv_loop_t* loop;
  std::deque<Item> queue;  // posted, not yet handed to the pool
  bool in_flight = false;  // one item is on the pool or waiting for its after
  bool draining = false;
  bool orphaned = false;  // the Strand is gone
  std::function<void()> drain_done;
};

struct Strand::Job {
  uv_work_t req;
  Item item;
  std::shared_ptr<State> state;
};

Strand::Strand(uv_loop_t* loop) : state_(std::make_shared<State>()) { state_->loop = loop; }

Strand::~Strand() {
  state_->orphaned = true;
  state_->queue.clear();
  state_->drain_done = nullptr;
}

Status Strand::Post(std::function<void()> work, std::function<void()> after) {
  if (state_->draining) return Status::Aborted("strand is draining; no new work");
  state_->queue.push_back(Item{std::move(work), std::move(after)});
  if (!state_->in_flight) Submit(state_);
  return Status::Ok();
}

size_t Strand::pending() const { return state_->queue.size() + (state_->in_flight ? 1 : 0); }

bool Strand::draining() const { return state_->draining; }

void Strand::Drain(std::function<void()> done) {
  GOSSYNC_CHECK(!state_->draining);
  state_->draining = true;
  if (pending() == 0) {
    if (done) done();
    return;
  }
  state_->drain_done = std::move(done);
}

void Strand::Submit(const std::shared_ptr<State>& state) {
  GOSSYNC_CHECK(!state->in_flight && !state->queue.empty());
  auto job = std::make_unique<Job>();
  job->item = std::move(state->queue.front());
  state->queue.pop_front();
  job->state = state;
  job->req.data = job.get();
  int rc = uv_queue_work(state->loop, &job->req, &Strand::RunWork, &Strand::AfterWork);
  // uv_queue_work fails only without a work callback; ours is always set.
  GOSSYNC_CHECK(rc == 0);
  state->in_flight = true;
  job.release();  // AfterWork frees it
}

void Strand::RunWork(uv_work_t* req) noexcept {
  auto* job = static_cast<Job*>(req->data);
  if (job->item.work) job->item.work();
}

void Strand::AfterWork(uv_work_t* req, int) noexcept {
  std::unique_ptr<Job> job(static_cast<Job*>(req->data));
  std::shared_ptr<State> state = job->state;
  if (state->orphaned) return;
  // Still in flight while `after` runs: an item it posts only queues, and is
  // submitted below, in order.
  if (job->item.after) job->item.after();  // may destroy the Strand: state stays alive
  state->in_flight = false;
  if (state->orphaned) return;
  if (!state->queue.empty()) {
    Submit(state);
  } else if (state->draining && state->drain_done) {
    std::function<void()> done = std::move(state->drain_done);
    state->drain_done = nullptr;
    done();
  }
}

}  // namespace gossync::io
