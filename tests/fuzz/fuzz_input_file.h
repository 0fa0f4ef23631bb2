// The fuzz input as a file path, for readers that take a path: an in-memory file (memfd)
// reopened through /proc/self/fd, rewritten for every input, so fuzzing does no disk I/O.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace t2::fuzz {

class InputFile {
 public:
  InputFile() {
    fd_ = ::memfd_create("t2-fuzz-input", MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }

  // Replaces the file's contents with `data`; returns its path.
  const std::string& Set(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    return path_;
  }

 private:
  int fd_ = -1;
  std::string path_;
};

// Reads every byte so that a span reaching outside the mapping faults here.
inline uint64_t Touch(const uint8_t* data, size_t size) {
  uint64_t sum = 0;
  for (size_t i = 0; i < size; ++i) sum += data[i];
  return sum;
}

// A failed invariant: crash so libFuzzer saves the input.
#define T2_FUZZ_CHECK(cond)                                                                  \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                                      \
    }                                                                                        \
  } while (0)

}  // namespace t2::fuzz
