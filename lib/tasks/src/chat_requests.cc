// General chat requests that need none of the experts: the first pass's "other" category.
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rng.h"
#include "t2/tasks/builtin.h"

namespace t2::tasks {
namespace {

using ChatRequestTemplate = std::function<std::string(Rng&)>;

// A data table (one entry per template), which is why it is long.
const std::vector<ChatRequestTemplate>& ChatRequestTemplates() {
  static const std::vector<std::string> forms = {"a short poem", "a haiku", "a limerick", "a short story",
                                                 "a song verse", "a thank-you note", "a product description",
                                                 "a birthday message", "a bedtime story", "a riddle"};
  static const std::vector<std::string> topics = {"the sea", "autumn leaves", "a lost cat", "friendship",
                                                  "a rainy day", "the city at night", "morning coffee",
                                                  "a mountain trip", "an old bicycle", "the first snow",
                                                  "a garden", "a long train ride", "a lighthouse",
                                                  "a grandmother's kitchen", "the last day of school",
                                                  "a thunderstorm"};
  static const std::vector<std::string> phrases = {"good morning", "where is the station?", "thank you very much",
                                                   "I would like a coffee", "see you tomorrow",
                                                   "the weather is nice today", "how much does this cost?",
                                                   "I am looking for a pharmacy", "the museum opens at nine",
                                                   "can I pay by card?"};
  static const std::vector<std::string> languages = {"French", "Spanish", "German", "Italian", "Japanese",
                                                     "Portuguese", "Dutch", "Korean"};
  static const std::vector<std::string> activities = {"sleeping better", "learning a new language",
                                                      "staying focused at work", "a job interview",
                                                      "making new friends", "keeping a plant alive",
                                                      "packing for a trip", "writing a cover letter",
                                                      "running a first marathon", "saving money on groceries",
                                                      "a long-distance friendship", "waking up early"};
  static const std::vector<std::string> things = {"a bakery", "a pet turtle", "a hiking club", "a podcast about films",
                                                  "a coffee shop", "a sailing boat", "a book club"};
  static const std::vector<std::string> recipients = {"my landlord", "a coworker", "my neighbour", "a teacher",
                                                      "a hotel", "my manager", "a plumber"};
  static const std::vector<std::string> subjects = {"a broken heater", "a schedule change", "a noisy party",
                                                    "a late delivery", "a room booking", "a lost key",
                                                    "a birthday surprise"};
  static const std::vector<std::string> media = {"books", "films", "board games", "podcasts", "songs"};
  static const std::vector<std::string> audiences = {"a rainy weekend", "a ten-year-old", "a long flight",
                                                     "someone who likes history", "a family evening"};
  static const std::vector<std::string> places = {"a quiet beach", "a busy market", "a library at night",
                                                  "a snowy village", "a forest in spring", "an old train station",
                                                  "a rooftop garden", "a fishing harbour at dawn", "a desert at noon",
                                                  "a crowded concert"};
  static const std::vector<std::string> cities = {"Lisbon", "Kyoto", "Vienna", "Montreal", "Cape Town", "Oslo",
                                                  "Lima", "Edinburgh"};
  static const std::vector<std::string> occasions = {"a wedding toast", "a retirement party", "a school graduation",
                                                     "a team's end-of-year dinner", "a friend's farewell"};
  static const std::vector<std::string> dishes = {"a vegetable soup", "banana bread", "a simple curry",
                                                  "pancakes", "a summer salad", "garlic noodles"};
  static const std::vector<std::string> characters = {"a pirate", "a robot", "a chef", "a detective", "a cat",
                                                      "a dragon", "an astronaut", "a gardener"};
  static const std::vector<std::string> events = {"a bake sale", "a new podcast episode", "a charity run",
                                                  "a garage sale", "a concert in the park", "a book launch",
                                                  "a community clean-up", "an art exhibition"};
  static const std::vector<std::string> scenes = {"a sunset over the lake", "my dog in the snow", "a busy street café",
                                                  "a birthday cake", "an empty beach", "old friends laughing",
                                                  "a field of sunflowers", "a foggy bridge", "a city skyline",
                                                  "a picnic in the park"};
  static const std::vector<std::string> chores = {"remove a coffee stain from a shirt", "plant tomatoes",
                                                  "tie a tie", "clean a cast iron pan", "fold a fitted sheet",
                                                  "make cold brew coffee"};
  // A template that draws more than once does so one statement at a time, the last word first:
  // the order these requests were first made in (GCC evaluated a call's arguments right to
  // left; C++ leaves that order to the compiler, and clang went left to right).
  static const std::vector<ChatRequestTemplate> templates = {
      [](Rng& r) {
        const std::string& topic = r.Pick(topics);
        return absl::StrCat("Write ", r.Pick(forms), " about ", topic, ".");
      },
      [](Rng& r) {
        const std::string& language = r.Pick(languages);
        return absl::StrCat("Translate \"", r.Pick(phrases), "\" into ", language, ".");
      },
      [](Rng& r) {
        const std::string& activity = r.Pick(activities);
        return absl::StrCat("Give me ", r.Int(3, 5), " tips for ", activity, ".");
      },
      [](Rng& r) { return absl::StrCat("Suggest a name for ", r.Pick(things), "."); },
      [](Rng& r) {
        const std::string& subject = r.Pick(subjects);
        return absl::StrCat("Write a polite email to ", r.Pick(recipients), " about ", subject,
                            ".");
      },
      [](Rng& r) {
        const std::string& audience = r.Pick(audiences);
        const std::string& medium = r.Pick(media);
        return absl::StrCat("Recommend ", r.Int(2, 5), " ", medium, " for ", audience, ".");
      },
      [](Rng& r) { return absl::StrCat("Describe ", r.Pick(places), " in a few sentences."); },
      [](Rng& r) { return absl::StrCat("How do I ", r.Pick(chores), "?"); },
      [](Rng& r) {
        const std::string& city = r.Pick(cities);
        return absl::StrCat("Plan a ", r.Int(2, 5), "-day visit to ", city, ".");
      },
      [](Rng& r) { return absl::StrCat("Write a short speech for ", r.Pick(occasions), "."); },
      [](Rng& r) { return absl::StrCat("Give me a recipe for ", r.Pick(dishes), "."); },
      [](Rng& r) {
        std::vector<std::string> two = r.Sample(characters, 2);
        return absl::StrCat("Write a short dialogue between ", two[0], " and ", two[1], ".");
      },
      [](Rng& r) { return absl::StrCat("Write a tweet announcing ", r.Pick(events), "."); },
      [](Rng& r) { return absl::StrCat("Suggest a caption for a photo of ", r.Pick(scenes), "."); },
  };
  return templates;
}

}  // namespace

std::vector<Example> GenerateChat(uint64_t seed, size_t count) {
  Rng rng(seed);
  std::vector<Example> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    out.push_back(
        {absl::StrCat("chat-", seed, "-", i), rng.Pick(ChatRequestTemplates())(rng), "other"});
  }
  return out;
}

}  // namespace t2::tasks
