#pragma once
// Internal to ctl: files that coap-edge-ctl writes (keys 0600, certificates 0644) and reads
// (CSRs, the CA). New files are created with O_CREAT|O_EXCL|O_NOFOLLOW, so nothing is ever
// overwritten and a planted symlink is never followed; a group of files is written all or none.

#include "tls/secret.h"

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace coap_edge::ctl {

inline constexpr mode_t kKeyMode = 0600;
inline constexpr mode_t kCertMode = 0644;

/// Creates `dir` and missing parents, new components with mode 0700. @returns an error message.
[[nodiscard]] std::optional<std::string> makePrivateDirectory(const std::filesystem::path& dir);

/// Reads a regular file of at most `max` bytes. @returns an error message ("... is larger than").
[[nodiscard]] std::optional<std::string> readSmallFile(const std::filesystem::path& file, std::size_t max,
                                                       std::string& out);
/// The same for key material: the bytes land in a SecretBytes, the buffer read into is wiped.
[[nodiscard]] std::optional<std::string> readSecretFile(const std::filesystem::path& file, std::size_t max,
                                                        tls::SecretBytes& out);

/// Files written together. Each write() creates a new file (never replacing one) with the given
/// mode whatever the umask, writes and fsyncs it; unless commit() is called, the destructor
/// removes every file this object created.
class NewFiles {
 public:
  NewFiles() = default;
  ~NewFiles();
  NewFiles(const NewFiles&) = delete;
  NewFiles& operator=(const NewFiles&) = delete;

  /// @returns an error message naming the file, or nullopt.
  [[nodiscard]] std::optional<std::string> write(const std::filesystem::path& file,
                                                 std::span<const std::uint8_t> bytes, mode_t mode);
  void commit() noexcept { committed_ = true; }

 private:
  std::vector<std::filesystem::path> created_;
  bool committed_ = false;
};

/// The first of `files` that exists (or is a dangling symlink), if any.
[[nodiscard]] std::optional<std::filesystem::path> firstExisting(const std::vector<std::filesystem::path>& files);

}  // namespace coap_edge::ctl
