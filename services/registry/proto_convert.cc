#include "proto_convert.h"

namespace t2::registry {

void ToProto(const store::ExpertInfo& in, v1::ExpertInfo* out) {
  out->set_name(in.name);
  out->set_version(in.version);
  out->set_sha256(in.sha256);
  out->set_size_bytes(in.size_bytes);
  out->set_base_model(in.base_model);
  out->set_base_fingerprint(in.base_fingerprint);
  out->set_targets(in.targets);
  out->set_task(in.task);
  out->set_metrics_json(in.metrics_json);
  out->set_published_unix_ms(in.published_unix_ms);
  out->set_deprecated(in.deprecated);
  out->set_published_by(in.published_by);
  out->set_normalization(in.normalization);
  out->set_created_at(in.created_at);
}

void ToProto(const store::ExpertRef& in, v1::ExpertRef* out) {
  out->set_name(in.name);
  out->set_version(in.version);
  out->set_sha256(in.sha256);
}

void ToProto(const store::Alias& in, v1::Alias* out) {
  out->set_alias(in.alias);
  ToProto(in.target, out->mutable_target());
  out->set_updated_unix_ms(in.updated_unix_ms);
}

void ToProto(const store::Mixture& in, v1::Mixture* out) {
  out->set_name(in.name);
  v1::AdapterSpec* spec = out->mutable_spec();
  for (const store::ExpertRef& ref : in.experts) ToProto(ref, spec->add_experts());
  for (double a : in.alpha) spec->add_alpha(a);
  spec->set_per_layer(in.per_layer);
  out->set_source(in.source);
  out->set_updated_unix_ms(in.updated_unix_ms);
}

void ToProto(const store::BaseModel& in, v1::BaseModel* out) {
  out->set_fingerprint(in.fingerprint);
  out->set_name(in.name);
  out->set_targets(in.targets);
  for (const auto& [name, rank] : in.target_ranks) (*out->mutable_target_ranks())[name] = rank;
}

void ToProto(const store::Event& in, v1::RegistryEvent* out) {
  out->set_sequence(in.sequence);
  switch (in.kind) {
    case store::EventKind::kExpertPublished:
      out->set_kind(v1::RegistryEvent::KIND_EXPERT_PUBLISHED);
      break;
    case store::EventKind::kExpertDeprecated:
      out->set_kind(v1::RegistryEvent::KIND_EXPERT_DEPRECATED);
      break;
    case store::EventKind::kAliasSet:
      out->set_kind(v1::RegistryEvent::KIND_ALIAS_SET);
      break;
    case store::EventKind::kAliasDeleted:
      out->set_kind(v1::RegistryEvent::KIND_ALIAS_DELETED);
      break;
    case store::EventKind::kMixturePut:
      out->set_kind(v1::RegistryEvent::KIND_MIXTURE_PUT);
      break;
    case store::EventKind::kMixtureDeleted:
      out->set_kind(v1::RegistryEvent::KIND_MIXTURE_DELETED);
      break;
  }
  out->set_name(in.name);
  out->set_version(in.version);
  out->set_target(in.target);
}

store::PublishHeader FromProto(const v1::PublishExpertRequest::Header& in) {
  return store::PublishHeader{
      .name = in.name(),
      .version = in.version(),
      .size_bytes = in.size_bytes(),
      .sha256 = in.sha256(),
      .publisher = ""};  // the service sets it from the caller, never the header
}

store::Mixture FromProto(const v1::Mixture& in) {
  store::Mixture out;
  out.name = in.name();
  for (const v1::ExpertRef& ref : in.spec().experts()) {
    out.experts.push_back({.name = ref.name(), .version = ref.version(), .sha256 = ref.sha256()});
  }
  out.alpha.assign(in.spec().alpha().begin(), in.spec().alpha().end());
  out.per_layer = in.spec().per_layer();
  out.source = in.source();
  return out;
}

store::BaseModel FromProto(const v1::BaseModel& in) {
  store::BaseModel out;
  out.fingerprint = in.fingerprint();
  out.name = in.name();
  out.targets = in.targets();
  for (const auto& [name, rank] : in.target_ranks()) out.target_ranks[name] = rank;
  return out;
}

}  // namespace t2::registry
