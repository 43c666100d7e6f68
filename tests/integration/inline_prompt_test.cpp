// `cadre run` on a terminal answers human tasks inline: a real `cadre`
// process on a pseudo-terminal shows each open question (the items of a map
// of human tasks, then a plain one), reads the person's answers, refuses one
// that its answer schema refuses and asks again, and records each answer as
// the same event as `cadre input`; the same with `--server` against a real
// `cadre serve`. Without a terminal it waits (exit 3).

#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/error.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "cadre_server.hpp"
#include "pty_process.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using nlohmann::json;

namespace {

using test::clock_type;

constexpr std::chrono::seconds limit{120};

// One question per file (an item of a map of human tasks), then a note
// whose answer must be text of 3 characters or more.
const char* const approve_yaml = R"yaml(
name: approve
input_schema:
  type: object
  required: [files]
  properties: {files: {type: array, items: {type: string}}}
tasks:
  - id: decide
    items: input.files
    prompt:
      question: "Publish {{ item }}?"
      file: "{{ item }}"
    answer_schema:
      type: object
      required: [decision]
      additionalProperties: false
      properties:
        decision: {type: string, enum: [publish, hold]}
        comment: {type: string}
  - id: note
    depends_on: decide
    prompt: "A note for the log?"
    answer_schema: {type: string, minLength: 3}
output: "{{ {decisions = tasks.decide.output, note = tasks.note.output} }}"
)yaml";

std::string write_workflow(const test::temp_dir& tmp) {
  auto path = tmp / "approve.yaml";
  std::ofstream{path} << approve_yaml;
  return path;
}

// The answers of the store's one execution, as `cadre input` records them:
// task_completed by "human", keyed by task and item.
std::vector<json> human_answers(const std::string& db) {
  std::vector<json> out;
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return out;
  }
  auto list = (*store)->list({});
  if (!list || list->size() != 1) {
    ADD_FAILURE() << "expected one execution";
    return out;
  }
  auto evs = (*store)->read(list->front().id, 1, 0);
  if (!evs) {
    ADD_FAILURE() << describe(evs.error());
    return out;
  }
  for (auto& ev : *evs)
    if (ev.type == "task_completed"
        && ev.payload.get().value("by", "") == "human")
      out.push_back(ev.payload.get());
  return out;
}

} // namespace

TEST(InlinePrompt, RunOnATerminalAsksEachOpenQuestionAndRecordsTheAnswers) {
  test::temp_dir tmp;
  auto db = tmp / "db";
  test::pty_process run{{"--db", db, "run", write_workflow(tmp), "--input",
                         R"({"files": ["a.txt", "b.txt"]})"}};
  ASSERT_TRUE(run.ok()) << run.error();
  auto deadline = clock_type::now() + limit;
  // decide[0]: the question, the file, a numbered choice.
  ASSERT_TRUE(run.expect("decide[0] waits for your answer", deadline))
    << run.shown();
  ASSERT_TRUE(run.expect("Publish a.txt?", deadline)) << run.shown();
  ASSERT_TRUE(run.expect("1) publish  2) hold", deadline)) << run.shown();
  ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
  run.type("3");
  ASSERT_TRUE(run.expect("'3' is not one of the choices", deadline))
    << run.shown();
  ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
  run.type("1");
  ASSERT_TRUE(run.expect("comment (text, Enter to leave out): ", deadline))
    << run.shown();
  run.type("");
  // decide[1], answered by the choice's word, with a comment.
  ASSERT_TRUE(run.expect("decide[1] waits for your answer", deadline))
    << run.shown();
  ASSERT_TRUE(run.expect("Publish b.txt?", deadline)) << run.shown();
  ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
  run.type("hold");
  ASSERT_TRUE(run.expect("comment (text, Enter to leave out): ", deadline))
    << run.shown();
  run.type("legal has not seen it");
  // note: a line of JSON or a bare word, checked against its schema.
  ASSERT_TRUE(run.expect("note waits for your answer", deadline))
    << run.shown();
  ASSERT_TRUE(run.expect("A note for the log?", deadline)) << run.shown();
  ASSERT_TRUE(run.expect("answer (JSON; a bare word is text): ", deadline))
    << run.shown();
  run.type("ok");
  ASSERT_TRUE(run.expect("does not match its schema", deadline))
    << run.shown();
  ASSERT_TRUE(run.expect("answer (JSON; a bare word is text): ", deadline))
    << run.shown();
  run.type("\"all checked\"");
  auto st = run.wait_until(deadline);
  ASSERT_TRUE(st) << run.shown();
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
    << test::describe_status(*st) << "\n"
    << run.shown();
  EXPECT_NE(run.shown().find("\"comment\": \"legal has not seen it\""),
            std::string::npos)
    << run.shown();

  auto answers = human_answers(db);
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0].value("task", ""), "decide");
  EXPECT_EQ(answers[0].value("item", -1), 0);
  EXPECT_EQ(answers[0].at("output"), (json{{"decision", "publish"}}));
  EXPECT_EQ(answers[1].value("item", -1), 1);
  EXPECT_EQ(answers[1].at("output"),
            (json{{"decision", "hold"}, {"comment", "legal has not seen it"}}));
  EXPECT_EQ(answers[2].value("task", ""), "note");
  EXPECT_FALSE(answers[2].contains("item"));
  EXPECT_EQ(answers[2].at("output"), json("all checked"));
}

TEST(InlinePrompt, ServerRunOnATerminalAsksAndAnswersOverTheApi) {
  test::temp_dir tmp;
  auto db = tmp / "db";
  {
    test::cadre_server node{db};
    ASSERT_TRUE(node.ok());
    test::pty_process run{{"--server", node.url(), "run", write_workflow(tmp),
                           "--input", R"({"files": ["a.txt", "b.txt"]})"}};
    ASSERT_TRUE(run.ok()) << run.error();
    auto deadline = clock_type::now() + limit;
    ASSERT_TRUE(run.expect("decide[0] waits for your answer", deadline))
      << run.shown();
    ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
    run.type("publish");
    ASSERT_TRUE(run.expect("Enter to leave out): ", deadline)) << run.shown();
    run.type("");
    ASSERT_TRUE(run.expect("decide[1] waits for your answer", deadline))
      << run.shown();
    ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
    run.type("2");
    ASSERT_TRUE(run.expect("Enter to leave out): ", deadline)) << run.shown();
    run.type("not yet");
    ASSERT_TRUE(run.expect("note waits for your answer", deadline))
      << run.shown();
    ASSERT_TRUE(run.expect("answer (JSON; a bare word is text): ", deadline))
      << run.shown();
    run.type("fine");
    auto st = run.wait_until(deadline);
    ASSERT_TRUE(st) << run.shown();
    ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
      << test::describe_status(*st) << "\n"
      << run.shown();
    EXPECT_NE(run.shown().find("\"note\": \"fine\""), std::string::npos)
      << run.shown();
  }
  auto answers = human_answers(db);
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0].value("item", -1), 0);
  EXPECT_EQ(answers[0].at("output"), (json{{"decision", "publish"}}));
  EXPECT_EQ(answers[1].at("output"),
            (json{{"decision", "hold"}, {"comment", "not yet"}}));
  EXPECT_EQ(answers[2].at("output"), json("fine"));
}

TEST(InlinePrompt, TheTerminalEndingLeavesTheQuestionOpen) {
  // The person's stdin ends (Ctrl-D) at the first question: the execution
  // waits, as without a terminal, and `cadre input` answers it later.
  test::temp_dir tmp;
  auto db = tmp / "db";
  auto wf = write_workflow(tmp);
  {
    test::pty_process run{{"--db", db, "run", wf, "--input",
                           R"({"files": ["a.txt"]})"}};
    ASSERT_TRUE(run.ok()) << run.error();
    auto deadline = clock_type::now() + limit;
    ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
    run.type("\x04");
    auto st = run.wait_until(deadline);
    ASSERT_TRUE(st) << run.shown();
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 3)
      << test::describe_status(*st) << "\n"
      << run.shown();
  }
  EXPECT_TRUE(human_answers(db).empty());
}

TEST(InlinePrompt, WithoutATerminalTheRunWaitsForCadreInput) {
  test::temp_dir tmp;
  auto db = tmp / "db";
  auto ran = test::run_to_end({"--db", db, "run", write_workflow(tmp),
                               "--input", R"({"files": ["a.txt"]})"},
                              tmp / "run.err", limit);
  ASSERT_TRUE(ran);
  ASSERT_EQ(ran->exit_code, 3) << ran->err;
  EXPECT_EQ(ran->err.find("waits for your answer"), std::string::npos)
    << ran->err;
  EXPECT_TRUE(human_answers(db).empty());
}

// A question of an item's sub-workflow (a map of sub-workflows) is asked
// inline by its key, and the item goes on with its answer.
TEST(InlinePrompt, AQuestionOfAnItemsSubWorkflowIsAskedByItsKey) {
  test::temp_dir tmp;
  auto db = tmp / "db";
  auto path = tmp / "each.yaml";
  std::ofstream{path} << R"yaml(
name: each
tasks:
  - id: file
    items: input.files
    input: {file: "{{ item }}"}
    workflow:
      name: one-file
      tasks:
        - id: ask
          prompt: {question: "Publish {{ input.file }}?"}
          answer_schema:
            type: object
            required: [decision]
            properties: {decision: {type: string, enum: [publish, hold]}}
        - id: publish
          depends_on: ask
          when: tasks.ask.output.decision == "publish"
          tool: echo
          input: {published: "{{ input.file }}"}
      output: "{{ tasks.publish.output }}"
output: "{{ tasks.file.output }}"
)yaml";
  test::pty_process run{{"--db", db, "run", path, "--input",
                         R"({"files": ["a.txt", "b.txt"]})"}};
  ASSERT_TRUE(run.ok()) << run.error();
  auto deadline = clock_type::now() + limit;
  ASSERT_TRUE(run.expect("file[0]/ask waits for your answer", deadline))
    << run.shown();
  ASSERT_TRUE(run.expect("Publish a.txt?", deadline)) << run.shown();
  ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
  run.type("publish");
  ASSERT_TRUE(run.expect("file[1]/ask waits for your answer", deadline))
    << run.shown();
  ASSERT_TRUE(run.expect("Publish b.txt?", deadline)) << run.shown();
  ASSERT_TRUE(run.expect("choose 1-2: ", deadline)) << run.shown();
  run.type("hold");
  auto st = run.wait_until(deadline);
  ASSERT_TRUE(st) << run.shown();
  ASSERT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
    << test::describe_status(*st) << "\n"
    << run.shown();
  auto answers = human_answers(db);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].value("task", ""), "file[0]/ask");
  EXPECT_EQ(answers[0].at("output"), (json{{"decision", "publish"}}));
  EXPECT_EQ(answers[1].value("task", ""), "file[1]/ask");
  EXPECT_EQ(answers[1].at("output"), (json{{"decision", "hold"}}));
}
