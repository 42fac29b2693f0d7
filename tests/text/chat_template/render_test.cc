// Rendering: Python semantics of expressions and printing, filters, tests, loops and their loop
// variables, scoping, namespaces, macros, Undefined, the transformers globals and errors. The
// expected strings are what Python's jinja2 renders in transformers' environment (the oracle
// test checks hundreds more such snippets against it at test time).
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "text/chat_template/chat_template.h"

namespace pagedllm::chat_template {
namespace {

using Json = nlohmann::ordered_json;

RenderOptions FixedNow() {
  std::tm now{};
  now.tm_year = 2024 - 1900;
  now.tm_mon = 6;
  now.tm_mday = 26;
  now.tm_hour = 10;
  now.tm_min = 30;
  now.tm_isdst = -1;
  std::mktime(&now);
  RenderOptions options;
  options.now = now;
  return options;
}

absl::StatusOr<std::string> Render(std::string_view source, const Json& context = Json::object()) {
  absl::StatusOr<ChatTemplate> parsed = ChatTemplate::Parse(source, "test");
  if (!parsed.ok()) return parsed.status();
  return parsed->Render(context, FixedNow());
}

std::string RenderOk(std::string_view source, const Json& context = Json::object()) {
  absl::StatusOr<std::string> out = Render(source, context);
  EXPECT_TRUE(out.ok()) << source << ": " << out.status();
  return out.value_or("<error>");
}

TEST(RenderTest, WhitespaceControlAsTransformers) {
  EXPECT_EQ(RenderOk("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(RenderOk("  {%- if true -%}  x  {%- endif -%}  "), "x");
  EXPECT_EQ(RenderOk("{%+ if true %}x{% endif %}|  {%+ if true %}y{% endif %}"), "x|  y");
  EXPECT_EQ(RenderOk("a\n  {# comment #}\nb"), "a\nb");
  EXPECT_EQ(RenderOk("{{ 'x' }}\n{{ 'y' }}\n"), "x\ny");
}

TEST(RenderTest, PrintsValuesAsPythonStr) {
  EXPECT_EQ(RenderOk("{{ none }} {{ true }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.5e-5 }}"),
            "None True 1.0 0.30000000000000004 1e+16 1.5e-05");
  EXPECT_EQ(RenderOk("{{ [1, 'a', None, True, {'k': 1.5}] }}|{{ (1,) }}"),
            "[1, 'a', None, True, {'k': 1.5}]|(1,)");
  EXPECT_EQ(RenderOk("{{ x }}", {{"x", {"it's", "say \"hi\"", "\n\u00e9\U0001F600\u200d"}}}),
            "[\"it's\", 'say \"hi\"', '\\n\u00e9\U0001F600\\u200d']");
}

TEST(RenderTest, ArithmeticAndComparisonAsPython) {
  EXPECT_EQ(RenderOk("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 3 ** 2 }}"),
            "3 -4 3.5 2 64");
  EXPECT_EQ(RenderOk("{{ 1 == 1.0 }} {{ true == 1 }} {{ (1, 2) == [1, 2] }} {{ 1 < 2 < 3 }}"),
            "True True False True");
  EXPECT_EQ(RenderOk("{{ 'a' + 'b' }} {{ 'ab' * 2 }} {{ [1] + [2] }} {{ 'a' ~ 1 ~ none }}"),
            "ab abab [1, 2] a1None");
  EXPECT_EQ(RenderOk("{{ 'b' in 'abc' }} {{ 'k' in {'k': 1} }} {{ 3 not in [1, 2] }}"),
            "True True True");
  EXPECT_EQ(RenderOk("{{ '%s has %d (%.2f)' % ('x', 3, 2.5) }}"), "x has 3 (2.50)");
}

TEST(RenderTest, IndexingAndSlicingByCodePoint) {
  EXPECT_EQ(RenderOk("{{ 'h\u00e9llo'[1:3] }}{{ 'abc'[::-1] }}{{ [1, 2, 3][-1] }}"), "\u00e9lcba3");
  EXPECT_EQ(RenderOk("{% for m in messages[::-1] %}{{ m }}{% endfor %}", {{"messages", {1, 2, 3}}}),
            "321");
}

TEST(RenderTest, Filters) {
  EXPECT_EQ(
      RenderOk("{{ 'Hello World-foo' | title }}|{{ 'hELLO' | capitalize }}|{{ ' x ' | trim }}"),
      "Hello World-Foo|Hello|x");
  EXPECT_EQ(RenderOk("{{ x | tojson }}", {{"x", {{"a", {1, 2.0, "\u00e9"}}, {"b", nullptr}}}}),
            "{\"a\": [1, 2.0, \"\u00e9\"], \"b\": null}");
  EXPECT_EQ(RenderOk("{{ x | tojson(indent=2) }}", {{"x", {{"a", {1}}}}}),
            "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(
      RenderOk("{{ m | selectattr('role', 'equalto', 'user') | map(attribute='c') | join(',') }}",
               {{"m", {{{"role", "user"}, {"c", "a"}}, {{"role", "x"}, {"c", "b"}}}}}),
      "a");
  EXPECT_EQ(
      RenderOk(
          "{{ [3, 1, 2] | sort | list }} {{ ['a', 'A'] | unique | list }} {{ [1, 2] | length }}"),
      "[1, 2, 3] ['a'] 2");
  EXPECT_EQ(RenderOk("{{ '42' | int + 1 }} {{ 'x' | int }} {{ '1.5' | float }} {{ 5 | string }}"),
            "43 0 1.5 5");
}

TEST(RenderTest, LoopVariables) {
  EXPECT_EQ(RenderOk("{% for m in messages %}{{ loop.index }}/{{ loop.length }}"
                     "{{ '' if loop.last else ',' }}{% endfor %}",
                     {{"messages", {1, 2, 3}}}),
            "1/3,2/3,3/3");
  EXPECT_EQ(RenderOk("{% for x in 'abc' %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}"
                     "{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }} "
                     "{% endfor %}"),
            "03True-b 12Falseac 21Falseb- ");
  EXPECT_EQ(RenderOk("{% for x in range(10) if x is odd %}{% if x > 5 %}{% break %}{% endif %}"
                     "{{ x }}{{ loop.index }} {% else %}none{% endfor %}"),
            "11 32 53 ");
  EXPECT_EQ(RenderOk("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(RenderOk("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
}

TEST(RenderTest, ScopingAndNamespaces) {
  // `set` inside a loop does not leak out, nor into the next iteration; namespaces do.
  EXPECT_EQ(RenderOk("{% set x = 'o' %}{% for i in [1, 2] %}{% if loop.first %}{% set x = 'i' %}"
                     "{% endif %}{{ x }}{% endfor %}{{ x }}"),
            "ioo");
  EXPECT_EQ(RenderOk("{% set ns = namespace(n=0) %}{% for x in [1, 2, 3] %}"
                     "{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }} {{ ns }}"),
            "6 <Namespace {'n': 6}>");
  // `set` inside `if` does leak.
  EXPECT_EQ(RenderOk("{% if true %}{% set y = 1 %}{% endif %}{{ y }}"), "1");
  EXPECT_EQ(
      RenderOk(
          "{% set b %}  {{ 1 + 1 }} {% endset %}[{{ b }}]{% set u | upper %}x{% endset %}{{ u }}"),
      "[  2 ]X");
  EXPECT_FALSE(Render("{% set x = 1 %}{% set x.a = 2 %}").ok());
}

TEST(RenderTest, Macros) {
  EXPECT_EQ(RenderOk("{% macro tag(name, body='') %}<{{ name }}>{{ body }}</{{ name }}>"
                     "{% endmacro %}{{ tag('b', 'x') }}{{ tag(name='i') }}"),
            "<b>x</b><i></i>");
  EXPECT_EQ(RenderOk("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}"
                     "{% endif %}{% endmacro %}{{ fact(5) }}"),
            "120");
  EXPECT_FALSE(Render("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").ok());
  EXPECT_FALSE(Render("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}").ok());  // too deep
}

TEST(RenderTest, UndefinedBehavesAsJinja2Default) {
  EXPECT_EQ(RenderOk("{{ missing }}|{{ missing is defined }}|{{ missing | default('d') }}|"
                     "{{ missing | length }}|{% for x in missing %}{% endfor %}"),
            "|False|d|0|");
  EXPECT_EQ(RenderOk("{{ d.nokey is defined }}|{{ d.nokey }}|{{ d['items'] is defined }}",
                     {{"d", Json::object()}}),
            "False||True");
  // Anything else on an undefined value is an error naming it.
  absl::StatusOr<std::string> out = Render("{{ missing.attr }}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "test: chat template line 1: 'missing' is undefined");
  EXPECT_FALSE(Render("{{ missing + 1 }}").ok());
  EXPECT_FALSE(Render("{{ missing | tojson }}").ok());
}

TEST(RenderTest, SandboxRefusesMutation) {
  absl::StatusOr<std::string> out = Render("{{ l.append(1) }}", {{"l", Json::array()}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(),
            "test: chat template line 1: access to attribute 'append' of 'list' object is "
            "unsafe.");
}

TEST(RenderTest, TransformersGlobals) {
  absl::StatusOr<std::string> out = Render(
      "x\n{% if messages | length > 1 %}{{ raise_exception('Roles must alternate') }}"
      "{% endif %}",
      {{"messages", {1, 2}}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "test: chat template line 2: Roles must alternate");
  EXPECT_EQ(RenderOk("{{ strftime_now('%d %B %Y') }} {{ strftime_now('%Y-%m-%d %a') }}"),
            "26 July 2024 2024-07-26 Fri");
  EXPECT_EQ(
      RenderOk("{% for x in [1, 2] %}{% generation %}<{{ x }}>{% endgeneration %}{% endfor %}"),
      "<1><2>");
}

TEST(RenderTest, ContextMustBeAnObject) {
  absl::StatusOr<ChatTemplate> parsed = ChatTemplate::Parse("x", "test");
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->Render(Json::array()).ok());
}

TEST(RenderTest, RenderIsThreadSafe) {
  absl::StatusOr<ChatTemplate> parsed = ChatTemplate::Parse(
      "{% set ns = namespace(s='') %}{% for m in messages %}{% set ns.s = ns.s ~ m %}{% endfor %}"
      "{{ ns.s }}",
      "test");
  ASSERT_TRUE(parsed.ok());
  std::vector<std::thread> threads;
  std::vector<std::string> outputs(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        outputs[t] = parsed->Render({{"messages", {t, i}}}).value_or("error");
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(outputs[t], std::to_string(t) + "199");
}

}  // namespace
}  // namespace pagedllm::chat_template
