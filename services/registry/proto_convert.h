// t2::store records <-> t2.v1 registry messages. The store stays free of generated code;
// this is the one place that knows both.
#pragma once

#include "t2/store/types.h"
#include "t2/v1/registry.pb.h"

namespace t2::registry {

void ToProto(const store::ExpertInfo& in, v1::ExpertInfo* out);
void ToProto(const store::ExpertRef& in, v1::ExpertRef* out);
void ToProto(const store::Alias& in, v1::Alias* out);
void ToProto(const store::Mixture& in, v1::Mixture* out);
void ToProto(const store::BaseModel& in, v1::BaseModel* out);
void ToProto(const store::Event& in, v1::RegistryEvent* out);

store::PublishHeader FromProto(const v1::PublishExpertRequest::Header& in);
store::Mixture FromProto(const v1::Mixture& in);
store::BaseModel FromProto(const v1::BaseModel& in);

}  // namespace t2::registry
