#!/usr/bin/env bash
# Reads a sanitizer or libFuzzer report on standard input and prints its innermost stack frame that lies
# outside libFuzzer, the sanitizers and their allocator (ASan's __asan:: frames included), the allocation
# functions and libc: the code that asked for what failed. Prints nothing when the report has no such frame.
# Usage: bash tests/fuzz/innermost_frame.sh <report.txt
grep -E '^ +#[0-9]+ ' |
  grep -v -E 'fuzzer::|__sanitizer|__asan|__lsan|__ubsan|__interceptor|libc\.so|sysdeps| in (malloc|calloc|realloc|operator new)' |
  head -1
