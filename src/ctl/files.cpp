#include "ctl/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <mbedtls/platform_util.h>

#include <cerrno>
#include <cstring>

namespace coap_edge::ctl {
namespace {

std::string errnoText() { return std::strerror(errno); }

// Reads all of fd into `out` (at most max + 1 bytes, so that "too large" can be told).
std::optional<std::string> readFd(int fd, const std::filesystem::path& file, std::size_t max,
                                  std::vector<unsigned char>& out) {
  out.resize(max + 1);
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fmt::format("{}: cannot read: {}", file.string(), errnoText());
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  if (got > max) return fmt::format("{}: is larger than {} bytes; is it the right file?", file.string(), max);
  return std::nullopt;
}

std::optional<std::string> readInto(const std::filesystem::path& file, std::size_t max,
                                    std::vector<unsigned char>& out) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fmt::format("{}: cannot open: {}", file.string(), errnoText());
  struct stat st {};
  std::optional<std::string> error;
  if (::fstat(fd, &st) != 0) {
    error = fmt::format("{}: cannot stat: {}", file.string(), errnoText());
  } else if (S_ISDIR(st.st_mode)) {
    error = fmt::format("{}: is a directory", file.string());
  } else {
    error = readFd(fd, file, max, out);
  }
  ::close(fd);
  return error;
}

}  // namespace

std::optional<std::string> makePrivateDirectory(const std::filesystem::path& dir) {
  std::filesystem::path partial;
  for (const auto& part : dir) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      return fmt::format("cannot create directory {}: {}", partial.string(), errnoText());
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return fmt::format("{}: not a directory", dir.string());
  return std::nullopt;
}

std::optional<std::string> readSmallFile(const std::filesystem::path& file, std::size_t max, std::string& out) {
  std::vector<unsigned char> buf;
  auto error = readInto(file, max, buf);
  if (!error) out.assign(buf.begin(), buf.end());
  return error;
}

std::optional<std::string> readSecretFile(const std::filesystem::path& file, std::size_t max,
                                          tls::SecretBytes& out) {
  std::vector<unsigned char> buf;
  auto error = readInto(file, max, buf);
  if (!error) out = tls::SecretBytes(std::span<const std::uint8_t>(buf.data(), buf.size()));
  mbedtls_platform_zeroize(buf.data(), buf.size());
  return error;
}

NewFiles::~NewFiles() {
  if (committed_) return;
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) (void)::unlink(it->c_str());
}

std::optional<std::string> NewFiles::write(const std::filesystem::path& file, std::span<const std::uint8_t> bytes,
                                           mode_t mode) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return fmt::format("{} exists; refusing to overwrite it", file.string());
    return fmt::format("cannot create {}: {}", file.string(), errnoText());
  }
  created_.push_back(file);
  std::optional<std::string> error;
  // The umask may have narrowed the mode (certificates); keys are never wider than asked.
  if (::fchmod(fd, mode) != 0) error = fmt::format("cannot set the mode of {}: {}", file.string(), errnoText());
  std::size_t done = 0;
  while (!error && done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = fmt::format("cannot write {}: {}", file.string(), errnoText());
    if (n > 0) done += static_cast<std::size_t>(n);
  }
  if (!error && ::fsync(fd) != 0) error = fmt::format("cannot write {}: {}", file.string(), errnoText());
  if (::close(fd) != 0 && !error) error = fmt::format("cannot write {}: {}", file.string(), errnoText());
  return error;
}

std::optional<std::filesystem::path> firstExisting(const std::vector<std::filesystem::path>& files) {
  for (const auto& f : files) {
    struct stat st {};
    if (::lstat(f.c_str(), &st) == 0) return f;
  }
  return std::nullopt;
}

}  // namespace coap_edge::ctl
