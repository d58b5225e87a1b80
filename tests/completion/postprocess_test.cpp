// Where completions end per language, suffix-overlap trimming and CRLF round trips.
#include <gtest/gtest.h>

#include "completion/language.h"
#include "completion/postprocess.h"

using namespace codepilot::completion;

namespace {
std::string run(const std::string& prefix, const std::string& suffix, const std::string& completion,
                const char* language) {
    auto cursor = analyze_cursor(prefix, suffix);
    return postprocess(completion, cursor, *language_by_id(language));
}
}  // namespace

TEST(Postprocess, MidLineFinishesTheLine) {
    auto c = analyze_cursor("x = compute(", ")\ny = 2\n");
    EXPECT_EQ(c.mode, CompletionMode::line);
    EXPECT_EQ(run("x = compute(", "\ny = 2\n", "a, b)\nprint(x)\n", "python"), "a, b)");
}

TEST(Postprocess, SuffixOverlapIsTrimmed) {
    EXPECT_EQ(run("x = compute(", ")\n", "a, b)", "python"), "a, b");
    EXPECT_EQ(run("if (ready", ") {\n", "State()) {", "javascript"), "State()");
    EXPECT_EQ(run("name = \"", "\"\n", "codepilot\"", "python"), "codepilot");
}

TEST(Postprocess, PythonBlockEndsWhereIndentationReturns) {
    std::string prefix = "def area(r):\n    ";
    auto c = analyze_cursor(prefix, "\n");
    EXPECT_EQ(c.mode, CompletionMode::block);
    EXPECT_EQ(run(prefix, "\n", "pi = 3.14159\n    return pi * r * r\n\ndef volume(r):\n    return 0\n", "python"),
              "pi = 3.14159\n    return pi * r * r");
}

TEST(Postprocess, AfterABlockOpenerABlockIsWritten) {
    std::string prefix = "def area(r):";
    auto c = analyze_cursor(prefix, "");
    EXPECT_EQ(c.mode, CompletionMode::block);
    EXPECT_EQ(run(prefix, "", "\n    return 3.14 * r * r\nprint(area(2))\n", "python"), "\n    return 3.14 * r * r");
}

TEST(Postprocess, BraceBlockKeepsItsClosingLineUnlessTheSuffixHasIt) {
    std::string prefix = "function add(a, b) {\n  ";
    std::string completion = "const sum = a + b;\n  return sum;\n}\n\nfunction sub(a, b) {\n";
    EXPECT_EQ(run(prefix, "", completion, "javascript"), "const sum = a + b;\n  return sum;\n}");
    EXPECT_EQ(run(prefix, "\n}\n", completion, "javascript"), "const sum = a + b;\n  return sum;");
}

TEST(Postprocess, TopLevelStopsAtTheNextDefinition) {
    std::string completion = "fn helper() -> i32 {\n    1\n}\nfn main() {\n}\n";
    EXPECT_EQ(run("use std::io;\n", "", completion, "rust"), "fn helper() -> i32 {\n    1\n}");
    EXPECT_EQ(run("package main\n", "", "func a() {}\nfunc b() {}\n", "go"), "func a() {}");
}

TEST(Postprocess, TwoBlankLinesEndABlock) {
    EXPECT_EQ(run("x = 1\n", "", "y = 2\nz = 3\n\n\nw = 4\n", "yaml"), "y = 2\nz = 3");
}

TEST(Postprocess, EarlyStopJudgesOnlyCompleteLines) {
    auto c = analyze_cursor("def f():\n    ", "");
    const auto& py = *language_by_id("python");
    EXPECT_EQ(completion_end("return 1\nde", c, py), std::string::npos);  // the line may still indent
    EXPECT_NE(completion_end("return 1\ndef g():\n", c, py), std::string::npos);
    auto line = analyze_cursor("x = f(a", ")");
    EXPECT_EQ(line.mode, CompletionMode::line);
    EXPECT_EQ(completion_end(", b", line, py), std::string::npos);
    EXPECT_EQ(completion_end(", b)\n", line, py), 4u);
    // A line ending in an opener, with nothing after the cursor, asks for a block.
    EXPECT_EQ(analyze_cursor("x = f(", "").mode, CompletionMode::block);
}

TEST(Crlf, RoundTrip) {
    std::string windows = "line one\r\nline two\r\n";
    EXPECT_TRUE(uses_crlf(windows));
    EXPECT_EQ(to_lf(windows), "line one\nline two\n");
    EXPECT_EQ(to_crlf("a\nb\n"), "a\r\nb\r\n");
    EXPECT_EQ(to_crlf(to_lf(windows)), windows);
    EXPECT_EQ(to_crlf("already\r\n"), "already\r\n");
    EXPECT_FALSE(uses_crlf("unix\n"));
}

TEST(Languages, DetectedFromIdsAndPaths) {
    EXPECT_GE(known_languages().size(), 25u);
    EXPECT_EQ(detect_language("python", "").id, "python");
    EXPECT_EQ(detect_language("typescriptreact", "").id, "typescript");
    EXPECT_EQ(detect_language("", "src/main.rs").id, "rust");
    EXPECT_EQ(detect_language("", "/a/b/Dockerfile").id, "dockerfile");
    EXPECT_EQ(detect_language("", "lib/x.HPP").id, "cpp");
    EXPECT_EQ(detect_language("no-such-language", "app.go").id, "go");  // unknown id: the path decides
    EXPECT_EQ(detect_language("", "notes.unknownext").id, "plaintext");
    EXPECT_EQ(language_by_id("sql")->comment("Path: a.sql"), "-- Path: a.sql");
    EXPECT_EQ(language_by_id("html")->comment("x"), "<!-- x -->");
    for (const char* path : {"a.py", "a.js", "a.ts", "a.java", "a.kt", "a.go", "a.rs", "a.c", "a.cpp", "a.cs",
                             "a.php", "a.rb", "a.swift", "a.sh", "a.sql", "a.lua", "a.scala", "a.dart", "a.hs",
                             "a.ex", "a.jl", "a.zig", "a.yaml", "a.toml", "a.tf", "a.proto", "a.html", "a.css"})
        EXPECT_NE(detect_language("", path).id, "plaintext") << path;
}
