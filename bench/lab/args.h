// Command lines of the benchmark programs (bench/bench_*.cpp): named options only, checked
// whole before any work. A main lists its options and calls check_args first; then it reads
// each value with arg_value or, for numbers, with the helpers below, which turn a bad value
// into an error naming the option and what it needs ("--reps needs a whole number in
// [1, 1000], got 'abc'"). Errors are c3::Error; each main catches them, prints
// "<program>: error: <what>" and ends with status 1 (bench_kernels: 2).
#pragma once
#include <string>
#include <vector>

namespace lab {

// One option of a program: a flag, an option followed by its value, or a value option that
// may be given more than once (bench_mixing's --set KEY=VALUE).
struct Option {
  enum Kind { flag, value, repeated };
  std::string name;
  Kind kind = flag;
};

// Checks every argument against `options`: an argument that is none of them is an error
// naming it and listing them, unless `positional` is given to collect the arguments that do
// not start with '-' (bench_mixing's CHECKPOINT). So is a value option last on the line or
// followed by another option instead of its value, and an option given twice (but a
// `repeated` one). --help or -h prints `usage` to stdout and returns false: the program then
// ends with status 0 without doing anything. Returns true to go on.
bool check_args(int argc, char** argv, const std::vector<Option>& options, const std::string& usage,
                std::vector<std::string>* positional = nullptr);

std::string arg_value(int argc, char** argv, const std::string& flag, const std::string& def);  // --flag VALUE
std::vector<std::string> arg_values(int argc, char** argv, const std::string& flag);  // each --flag VALUE, in order
bool has_flag(int argc, char** argv, const std::string& flag);

// `text` as a whole number in [lo, hi] (core/parse.h's parse_count: digits only), or an error
// naming `opt`.
int int_value(const std::string& opt, const std::string& text, int lo, int hi);
// The value of --flag (`def` when the option is absent) as a whole number in [lo, hi].
int int_arg(int argc, char** argv, const std::string& flag, int def, int lo, int hi);
// A comma list of whole numbers in [lo, hi] ("1,0"; `def` when the option is absent), none empty.
std::vector<int> int_list_arg(int argc, char** argv, const std::string& flag, const std::string& def, int lo,
                              int hi);
// A finite number in [lo, hi] (core/parse.h's parse_number).
double number_arg(int argc, char** argv, const std::string& flag, double def, double lo, double hi);

}  // namespace lab
