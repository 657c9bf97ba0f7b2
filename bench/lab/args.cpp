#include "bench/lab/args.h"

#include <cstdio>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/parse.h"

namespace lab {

bool check_args(int argc, char** argv, const std::vector<Option>& options, const std::string& usage,
                std::vector<std::string>* positional) {
  auto find = [&](const std::string& s) -> const Option* {
    for (const Option& o : options)
      if (o.name == s) return &o;
    return nullptr;
  };
  auto is_option = [&](const std::string& s) { return s == "--help" || s == "-h" || find(s); };
  std::string names;
  for (const Option& o : options) names += (names.empty() ? "" : ", ") + o.name;
  std::set<std::string> seen;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      std::fputs(usage.c_str(), stdout);
      return false;
    }
    const Option* o = find(s);
    if (!o && positional && (s.empty() || s[0] != '-')) {
      positional->push_back(s);
      continue;
    }
    if (!o)
      throw c3::Error((!s.empty() && s[0] == '-' ? "unknown option '" : "unexpected argument '") + s +
                      "'; the options are " + names + " (see --help)");
    C3_CHECK(o->kind == Option::repeated || seen.insert(s).second, s, " is given twice");
    if (o->kind == Option::flag) continue;
    // A value that is itself an option is a value forgotten ("--out --reps 3"), not a value.
    C3_CHECK(i + 1 < argc && !is_option(argv[i + 1]), s, " needs a value",
             i + 1 < argc ? std::string(", got the option ") + argv[i + 1] : std::string(" (last on the line)"));
    ++i;
  }
  return true;
}

std::string arg_value(int argc, char** argv, const std::string& flag, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (flag == argv[i]) return argv[i + 1];
  return def;
}

std::vector<std::string> arg_values(int argc, char** argv, const std::string& flag) {
  std::vector<std::string> out;
  for (int i = 1; i + 1 < argc; ++i)
    if (flag == argv[i]) out.push_back(argv[++i]);
  return out;
}

bool has_flag(int argc, char** argv, const std::string& flag) {
  for (int i = 1; i < argc; ++i)
    if (flag == argv[i]) return true;
  return false;
}

int int_value(const std::string& opt, const std::string& text, int lo, int hi) {
  return int(c3::count_in(opt, text, lo, hi));
}

int int_arg(int argc, char** argv, const std::string& flag, int def, int lo, int hi) {
  return has_flag(argc, argv, flag) ? int_value(flag, arg_value(argc, argv, flag, ""), lo, hi) : def;
}

std::vector<int> int_list_arg(int argc, char** argv, const std::string& flag, const std::string& def, int lo,
                              int hi) {
  const std::string text = arg_value(argc, argv, flag, def);
  std::vector<int> out;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    const std::optional<int64_t> n = c3::parse_count(text.substr(start, comma - start));
    C3_CHECK(n && *n >= lo && *n <= hi, flag, " needs whole numbers in [", lo, ", ", hi,
             "] separated by commas, got '", text, "'");
    out.push_back(int(*n));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

double number_arg(int argc, char** argv, const std::string& flag, double def, double lo, double hi) {
  if (!has_flag(argc, argv, flag)) return def;
  return c3::number_in(flag, arg_value(argc, argv, flag, ""), lo, hi);
}

}  // namespace lab
