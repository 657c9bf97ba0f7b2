// The benchmark programs' command-line helpers (bench/lab/args.h): every malformed value or
// argument is a c3::Error naming the option; tools/test_cli.sh checks that each program
// reports them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "bench/lab/args.h"
#include "core/error.h"

namespace {

// argv for a list of arguments (argv[0] = "bench"); the strings outlive the pointers.
struct Argv {
  std::vector<std::string> s;
  std::vector<char*> p;
  explicit Argv(std::vector<std::string> args) : s(std::move(args)) {
    s.insert(s.begin(), "bench");
    for (std::string& a : s) p.push_back(a.data());
  }
  int argc() const { return int(p.size()); }
  char** argv() { return p.data(); }
};

const std::vector<lab::Option> kOpts = {{"--cpu"}, {"--reps", lab::Option::value}, {"--set", lab::Option::repeated}};

bool check(std::vector<std::string> args, std::vector<std::string>* positional = nullptr) {
  Argv a(std::move(args));
  return lab::check_args(a.argc(), a.argv(), kOpts, "usage: bench\n", positional);
}

}  // namespace

TEST_CASE("bench args: whole numbers and numbers in a range, or an error naming the option") {
  CHECK(lab::int_value("--reps", "7", 1, 1000) == 7);
  for (const char* bad : {"", "abc", "3abc", "1e3", "-1", "+3", "0", "1001", "99999999999999999999"})
    CHECK_THROWS_WITH_AS(lab::int_value("--reps", bad, 1, 1000),
                         ("--reps needs a whole number in [1, 1000], got '" + std::string(bad) + "'").c_str(),
                         c3::Error);
  Argv a({"--reps", "12", "--threads", "1,0,2", "--width", "0.25"});
  CHECK(lab::int_arg(a.argc(), a.argv(), "--reps", 5, 1, 1000) == 12);
  CHECK(lab::int_arg(a.argc(), a.argv(), "--batch", 5, 1, 1000) == 5);  // absent: the default, unchecked
  CHECK(lab::int_list_arg(a.argc(), a.argv(), "--threads", "1", 0, 16) == std::vector<int>{1, 0, 2});
  CHECK(lab::int_list_arg(a.argc(), a.argv(), "--other", "1,0", 0, 16) == std::vector<int>{1, 0});
  CHECK(lab::number_arg(a.argc(), a.argv(), "--width", 1.0, 0.01, 4) == 0.25);
  CHECK(lab::number_arg(a.argc(), a.argv(), "--depth", 1.0, 0.01, 4) == 1.0);
  for (const char* bad : {"", "x", "1,", ",1", "1,,0", "1,x", "17", "1;0"}) {
    Argv b({"--threads", bad});
    CHECK_THROWS_WITH_AS(lab::int_list_arg(b.argc(), b.argv(), "--threads", "1", 0, 16),
                         doctest::Contains("--threads needs whole numbers in [0, 16] separated by commas"), c3::Error);
  }
  for (const char* bad : {"", "abc", "0.25x", "nan", "inf", "5", "0"}) {
    Argv b({"--width", bad});
    CHECK_THROWS_WITH_AS(lab::number_arg(b.argc(), b.argv(), "--width", 1.0, 0.01, 4),
                         doctest::Contains("--width needs a number in [0.01, 4]"), c3::Error);
  }
}

TEST_CASE("bench args: check_args rejects unknown, misplaced, missing and repeated arguments") {
  CHECK(check({}));
  CHECK(check({"--cpu", "--reps", "3", "--set", "a=1", "--set", "b=2"}));
  CHECK_FALSE(check({"--cpu", "--help"}));  // printed the usage: the program ends with status 0
  CHECK_THROWS_WITH_AS(check({"--rep", "3"}),
                       "unknown option '--rep'; the options are --cpu, --reps, --set (see --help)", c3::Error);
  CHECK_THROWS_WITH_AS(check({"3"}), doctest::Contains("unexpected argument '3'"), c3::Error);
  CHECK_THROWS_WITH_AS(check({"--reps"}), "--reps needs a value (last on the line)", c3::Error);
  CHECK_THROWS_WITH_AS(check({"--reps", "--cpu"}), "--reps needs a value, got the option --cpu", c3::Error);
  CHECK_THROWS_WITH_AS(check({"--reps", "-h"}), doctest::Contains("--reps needs a value"), c3::Error);
  CHECK_THROWS_WITH_AS(check({"--cpu", "--cpu"}), "--cpu is given twice", c3::Error);
  CHECK_THROWS_WITH_AS(check({"--reps", "1", "--reps", "2"}), "--reps is given twice", c3::Error);
  std::vector<std::string> pos;
  CHECK(check({"run.safetensors", "--reps", "3", "x"}, &pos));
  CHECK(pos == std::vector<std::string>{"run.safetensors", "x"});
  CHECK_THROWS_WITH_AS(check({"run.safetensors", "--x"}, &pos), doctest::Contains("unknown option '--x'"), c3::Error);
  Argv a({"--set", "a=1", "--cpu", "--set", "b=2"});
  CHECK(lab::arg_values(a.argc(), a.argv(), "--set") == std::vector<std::string>{"a=1", "b=2"});
}
