// A Worker service on gRPC's callback API whose Generate streams stay open, silent, until
// they are cancelled: what a dispatcher holds for a stream waiting on a worker (a long
// queue, a slow first token), with no thread on the worker's side either. Info reports a
// capacity far above any test's or benchmark's streams. Header-only: the dispatcher's test
// and bench/stream_bench use it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "t2/v1/worker.grpc.pb.h"

namespace t2::testing {

class HeldWorker final : public t2::v1::Worker::CallbackService {
 public:
  // Generate streams open now.
  int open() const { return open_.load(); }

  grpc::ServerWriteReactor<t2::v1::WorkerGenerateResponse>* Generate(
      grpc::CallbackServerContext*, const t2::v1::WorkerGenerateRequest*) override {
    return new HeldStream(open_);
  }

  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* context,
                                 const t2::v1::WorkerInfoRequest*,
                                 t2::v1::WorkerInfo* info) override {
    info->set_max_batch_size(1 << 16);
    info->set_max_queue(1 << 20);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  class HeldStream final : public grpc::ServerWriteReactor<t2::v1::WorkerGenerateResponse> {
   public:
    explicit HeldStream(std::atomic<int>& open) : open_(open) { ++open_; }
    void OnCancel() override {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "held stream cancelled"));
    }
    void OnDone() override {
      --open_;
      delete this;
    }

   private:
    std::atomic<int>& open_;
  };

  std::atomic<int> open_{0};
};

}  // namespace t2::testing
