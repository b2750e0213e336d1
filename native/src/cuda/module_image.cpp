#include "cuda/module_image.h"

#include <elf.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "emu_cuda.h"
#include "rt/runtime.h"

namespace emu::cuda {
namespace {

using emu::rt::format;

constexpr uint16_t kEmCuda = 190;             // e_machine of NVIDIA CUDA ELF files
constexpr uint32_t kFatbinMagic = 0xBA55ED50; // fatbinary container

bool is_ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

int parse_ptx(const char* text, int device_arch, ModuleImage* out, std::string* error) {
    out->kind = ModuleImage::Kind::Ptx;
    out->names_known = true;
    if (const char* t = strstr(text, ".target")) {
        t += 7;
        while (*t == ' ' || *t == '\t') ++t;
        if (strncmp(t, "sm_", 3) == 0) out->arch = atoi(t + 3);
    }
    if (out->arch > device_arch) {
        *error = format("PTX targets sm_%d, newer than the emulated device (sm_%d)", out->arch, device_arch);
        return CUDA_ERROR_INVALID_PTX;
    }
    // Every ".entry NAME" is a kernel (".visible .entry NAME(" in NVRTC output).
    for (const char* p = strstr(text, ".entry"); p != nullptr; p = strstr(p + 6, ".entry")) {
        if (p != text && is_ident_char(p[-1])) continue;
        const char* q = p + 6;
        if (*q != ' ' && *q != '\t' && *q != '\n') continue;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') ++q;
        const char* end = q;
        while (is_ident_char(*end)) ++end;
        if (end != q) out->entries.emplace_back(q, end);
    }
    return CUDA_SUCCESS;
}

int parse_cubin(const unsigned char* img, int device_arch, ModuleImage* out, std::string* error) {
    out->kind = ModuleImage::Kind::Cubin;
    Elf64_Ehdr eh;
    memcpy(&eh, img, sizeof(eh));
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != kEmCuda) {
        *error = format("ELF image is not a CUDA binary (class %d, e_machine %d; CUBINs have e_machine %d)",
                        eh.e_ident[EI_CLASS], eh.e_machine, kEmCuda);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    // NVRTC 11.8 writes the SM twice into e_flags (sm_90: 0x5a055a, sm_80: 0x500550).  Only that
    // layout is interpreted; other encodings are accepted without an architecture check.
    const unsigned lo = eh.e_flags & 0xffu, hi = (eh.e_flags >> 16) & 0xffu;
    if (lo == hi && lo >= 20 && lo < 200) {
        out->arch = static_cast<int>(lo);
        // A CUBIN runs only on its own SM major with an equal or newer minor.
        if (out->arch / 10 != device_arch / 10 || out->arch % 10 > device_arch % 10) {
            *error = format("CUBIN for sm_%d cannot run on the emulated sm_%d device (an H100 rejects it too)",
                            out->arch, device_arch);
            return CUDA_ERROR_NO_BINARY_FOR_GPU;
        }
    }
    // cuModuleLoadData gets no size: trust the headers, but require every table we read to lie before
    // the end of the section header table (where CUDA toolchains put it).
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0) {
        *error = "CUBIN has no section headers";
        return CUDA_ERROR_INVALID_IMAGE;
    }
    const uint64_t limit = eh.e_shoff + uint64_t(eh.e_shnum) * eh.e_shentsize;
    auto section = [&](unsigned i) {
        Elf64_Shdr sh;
        memcpy(&sh, img + eh.e_shoff + uint64_t(i) * sizeof(Elf64_Shdr), sizeof(sh));
        return sh;
    };
    out->names_known = true;
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        const Elf64_Shdr sh = section(i);
        if (sh.sh_type != SHT_SYMTAB) continue;
        if (sh.sh_link >= eh.e_shnum || sh.sh_entsize != sizeof(Elf64_Sym)) {
            *error = "CUBIN symbol table is malformed";
            return CUDA_ERROR_INVALID_IMAGE;
        }
        const Elf64_Shdr strtab = section(sh.sh_link);
        if (sh.sh_offset + sh.sh_size > limit || strtab.sh_offset + strtab.sh_size > limit) {
            *error = "CUBIN symbol table lies outside the image";
            return CUDA_ERROR_INVALID_IMAGE;
        }
        for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= sh.sh_size; off += sizeof(Elf64_Sym)) {
            Elf64_Sym sym;
            memcpy(&sym, img + sh.sh_offset + off, sizeof(sym));
            if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || ELF64_ST_BIND(sym.st_info) != STB_GLOBAL) continue;
            if (sym.st_name >= strtab.sh_size) continue;
            const char* name = reinterpret_cast<const char*>(img + strtab.sh_offset + sym.st_name);
            out->entries.emplace_back(name, strnlen(name, strtab.sh_size - sym.st_name));
        }
    }
    return CUDA_SUCCESS;
}

} // namespace

int parse_module_image(const void* image, int device_arch, ModuleImage* out, std::string* error) {
    *out = ModuleImage{};
    const auto* img = static_cast<const unsigned char*>(image);
    if (memcmp(img, ELFMAG, SELFMAG) == 0) return parse_cubin(img, device_arch, out, error);
    uint32_t magic;
    memcpy(&magic, img, sizeof(magic));
    if (magic == kFatbinMagic) {
        out->kind = ModuleImage::Kind::Fatbin;
        return CUDA_SUCCESS;
    }
    // PTX is NUL-terminated text starting with a comment or a directive.
    const char* text = reinterpret_cast<const char*>(img);
    size_t i = 0;
    while (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r') ++i;
    if ((text[i] == '/' || text[i] == '.') && strstr(text + i, ".version") != nullptr &&
        strstr(text + i, ".target") != nullptr)
        return parse_ptx(text + i, device_arch, out, error);
    *error = "unrecognised module image: neither PTX text, a CUBIN (CUDA ELF) nor a fatbinary";
    return CUDA_ERROR_INVALID_IMAGE;
}

} // namespace emu::cuda
