#include "job/npy.h"

#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join
#include <fstream>
#include <regex>
#include <unistd.h>

#include "job/error.h"

namespace daenr::job {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw DataError(fmt::format("{}: {}", path.string(), what));
}

// The header is a Python dict literal such as
//   {'descr': '<f8', 'fortran_order': False, 'shape': (1800, 961), }
// written by numpy in this form; we read the three keys we need.
struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

Header parse_header(const std::string& text, const std::filesystem::path& path) {
  Header h;
  std::smatch m;
  static const std::regex descr_re(R"('descr'\s*:\s*'([^']*)')");
  static const std::regex order_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  if (!std::regex_search(text, m, descr_re)) fail(path, "malformed .npy header: no 'descr'");
  h.descr = m[1];
  if (!std::regex_search(text, m, order_re))
    fail(path, "malformed .npy header: no 'fortran_order'");
  h.fortran_order = m[1] == "True";
  if (!std::regex_search(text, m, shape_re)) fail(path, "malformed .npy header: no 'shape'");
  const std::string dims = m[1];
  static const std::regex dim_re(R"(\s*(\d+)\s*(,|$))");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), dim_re);
       it != std::sregex_iterator(); ++it) {
    h.shape.push_back(std::stoll((*it)[1]));
  }
  // Everything in the shape must have been a number: "(2, x)" is malformed.
  std::string stripped;
  for (char c : dims)
    if (!std::isspace(static_cast<unsigned char>(c))) stripped += c;
  std::string rebuilt;
  for (std::size_t i = 0; i < h.shape.size(); ++i) rebuilt += std::to_string(h.shape[i]) + ",";
  if (stripped != rebuilt && stripped + "," != rebuilt) {
    fail(path, fmt::format("malformed .npy header: shape ({})", dims));
  }
  return h;
}

}  // namespace

std::int64_t NpyArray::count() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<float> NpyArray::to_floats() const {
  std::vector<float> out(static_cast<std::size_t>(count()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (dtype == NpyDtype::kFloat32) {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    } else {
      double v;
      std::memcpy(&v, bytes.data() + 8 * i, 8);
      out[i] = static_cast<float>(v);
    }
  }
  return out;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(path, std::filesystem::exists(path) ? "cannot be read" : "no such file");
  }
  char magic[kMagicLen];
  if (!in.read(magic, kMagicLen) || std::memcmp(magic, kMagic, kMagicLen) != 0) {
    fail(path, "not a .npy file (bad magic string)");
  }
  unsigned char version[2];
  if (!in.read(reinterpret_cast<char*>(version), 2)) fail(path, "truncated .npy header");
  std::size_t header_len = 0;
  if (version[0] == 1) {
    unsigned char len[2];
    if (!in.read(reinterpret_cast<char*>(len), 2)) fail(path, "truncated .npy header");
    header_len = len[0] | (len[1] << 8);
  } else if (version[0] == 2 || version[0] == 3) {
    unsigned char len[4];
    if (!in.read(reinterpret_cast<char*>(len), 4)) fail(path, "truncated .npy header");
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<std::size_t>(len[3]) << 24);
  } else {
    fail(path, fmt::format("unsupported .npy format version {}.{}", version[0], version[1]));
  }
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) {
    fail(path, "truncated .npy header");
  }
  const Header h = parse_header(header, path);
  if (h.fortran_order) fail(path, "Fortran-order arrays are not supported (save with C order)");
  NpyArray a;
  if (h.descr == "<f8") {
    a.dtype = NpyDtype::kFloat64;
  } else if (h.descr == "<f4") {
    a.dtype = NpyDtype::kFloat32;
  } else {
    fail(path, fmt::format("unsupported dtype '{}' (expected '<f4' or '<f8')", h.descr));
  }
  a.shape = h.shape;
  const auto expected = static_cast<std::streamsize>(a.count() * a.item_bytes());
  // Compared with what the file holds before allocating: a damaged header's shape must end in
  // this message, not in an allocation of its size.
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const auto found = ec ? std::streamsize(0) : static_cast<std::streamsize>(size) - in.tellg();
  if (found < expected) {
    fail(path, fmt::format("truncated data: expected {} bytes for shape ({}), found {}", expected,
                           fmt::join(h.shape, ", "), found));
  }
  a.bytes.resize(static_cast<std::size_t>(expected));
  if (!in.read(a.bytes.data(), expected)) fail(path, "cannot be read");
  return a;
}

void write_npy(const std::filesystem::path& path, NpyDtype dtype, const std::vector<int64_t>& shape,
               const void* data) {
  const std::string descr = dtype == NpyDtype::kFloat64 ? "<f8" : "<f4";
  std::size_t count = 1;
  std::string shape_text;
  for (auto d : shape) {
    count *= static_cast<std::size_t>(d);
    shape_text += std::to_string(d) + ", ";
  }
  if (shape.size() == 1)
    shape_text.pop_back();  // "(5,)"
  else if (shape.size() > 1)
    shape_text.resize(shape_text.size() - 2);  // "(2, 3)"
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shape_text);
  // Pad with spaces so that magic + version + length + header + '\n' is a
  // multiple of 64, as numpy does, which keeps the data aligned.
  const std::size_t total = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');

  auto tmp = path;
  tmp += fmt::format(".tmp.{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw DataError(fmt::format("{}: cannot be written", path.string()));
    const unsigned char prefix[4] = {1, 0, static_cast<unsigned char>(header.size() & 0xff),
                                     static_cast<unsigned char>(header.size() >> 8)};
    out.write(kMagic, kMagicLen);
    out.write(reinterpret_cast<const char*>(prefix), 4);
    out << header;
    out.write(static_cast<const char*>(data),
              static_cast<std::streamsize>(count * (dtype == NpyDtype::kFloat64 ? 8 : 4)));
    if (!out.flush()) throw DataError(fmt::format("{}: write failed", path.string()));
  }
  // Make the bytes durable before the rename publishes them.
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw DataError(fmt::format("{}: cannot be written: {}", path.string(), ec.message()));
  }
}

}  // namespace daenr::job
