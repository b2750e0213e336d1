// libcublas_emu.so: the cuBLAS surface of the emulator, exported under NVIDIA's symbol names.
//
// GEMMs follow cuBLAS exactly: column-major storage, op(A) is m x k and op(B) is k x n, A is stored
// rows x cols = (transa == N ? m x k : k x m) with lda >= rows, likewise B and C (m x n, ldc >= m);
// C = alpha * op(A) * op(B) + beta * C, and C is not read when beta == 0.  Inputs in f32, f16 or
// bf16 are widened to f32 and multiplied by OpenBLAS (cblas_sgemm) with f32 accumulation; an f16 or
// bf16 C is rounded back to nearest-even.  Only the m x n window of C is written, never the padding
// between columns.  Everything is synchronous, so the stream is only remembered.
#include <cblas.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

#include "cublas/convert.h"
#include "emu_cublas.h"
#include "rt/runtime.h"

#define EMU_API extern "C" __attribute__((visibility("default")))

struct cublasContext {
    CUstream stream = nullptr;
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;
    cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
};

namespace {

struct Handles {
    std::mutex mu;
    std::set<cublasContext*> live;
};

Handles& handles() {
    static Handles* h = new Handles;
    return *h;
}

bool handle_valid(cublasHandle_t h) {
    Handles& hs = handles();
    std::lock_guard<std::mutex> lock(hs.mu);
    return hs.live.count(h) != 0;
}

cublasStatus_t fail(cublasStatus_t status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
cublasStatus_t fail(cublasStatus_t status, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emu::rt::set_last_error(buf);
    return status;
}

#define REQUIRE_HANDLE(fn, h)                                                                      \
    do {                                                                                           \
        if (!handle_valid(h)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "%s: invalid handle %p", fn, (void*)(h)); \
    } while (0)

size_t element_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }
emu::blas::Half half_type(cudaDataType t) { return t == CUDA_R_16BF ? emu::blas::Half::BF16 : emu::blas::Half::F16; }

// A column-major rows x cols matrix with leading dimension ld, as f32 with leading dimension `ld_out`.
// f32 data is used in place; 16-bit data is widened into `scratch` (packed, ld_out = rows).
const float* as_f32(const void* p, cudaDataType type, int rows, int cols, int ld, std::vector<float>& scratch,
                    int* ld_out) {
    if (type == CUDA_R_32F) {
        *ld_out = ld;
        return static_cast<const float*>(p);
    }
    scratch.resize(size_t(rows) * cols);
    for (int j = 0; j < cols; ++j)
        emu::blas::half_to_float(half_type(type), static_cast<const char*>(p) + size_t(j) * ld * 2, size_t(rows),
                                 scratch.data() + size_t(j) * rows);
    *ld_out = rows;
    return scratch.data();
}

const char* type_name(cudaDataType t) {
    switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    case CUDA_R_64F: return "CUDA_R_64F";
    default: return "unsupported";
    }
}

struct Gemm {
    const char* fn;
    cublasOperation_t transa, transb;
    int m, n, k;
    const void* alpha;
    const void* A;
    cudaDataType Atype;
    int lda;
    long long stride_a;
    const void* B;
    cudaDataType Btype;
    int ldb;
    long long stride_b;
    const void* beta;
    void* C;
    cudaDataType Ctype;
    int ldc;
    long long stride_c;
    int batch;
    cublasComputeType_t compute;
};

cublasStatus_t run_gemm(cublasHandle_t handle, const Gemm& g) {
    REQUIRE_HANDLE(g.fn, handle);
    auto valid_op = [](cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; };
    if (!valid_op(g.transa) || !valid_op(g.transb))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: invalid operation (%d, %d)", g.fn, g.transa, g.transb);
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: negative size m=%d n=%d k=%d batch=%d", g.fn, g.m, g.n, g.k, g.batch);
    const bool ta = g.transa != CUBLAS_OP_N, tb = g.transb != CUBLAS_OP_N;
    const int a_rows = ta ? g.k : g.m, a_cols = ta ? g.m : g.k;
    const int b_rows = tb ? g.n : g.k, b_cols = tb ? g.k : g.n;
    if (g.lda < std::max(1, a_rows) || g.ldb < std::max(1, b_rows) || g.ldc < std::max(1, g.m))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: leading dimension too small (lda=%d needs >= %d, ldb=%d needs >= %d, "
                    "ldc=%d needs >= %d)", g.fn, g.lda, std::max(1, a_rows), g.ldb, std::max(1, b_rows), g.ldc,
                    std::max(1, g.m));
    switch (g.compute) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32: break; // all computed in full f32 here
    default: return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: compute type %d is not emulated (use CUBLAS_COMPUTE_32F)", g.fn, g.compute);
    }
    // The CUBLAS_COMPUTE_32F type combinations of the cuBLAS documentation restricted to f32/f16/bf16.
    const bool in_ok = g.Atype == g.Btype && (g.Atype == CUDA_R_32F || g.Atype == CUDA_R_16F || g.Atype == CUDA_R_16BF);
    const bool out_ok = g.Ctype == CUDA_R_32F || (g.Ctype == g.Atype && g.Atype != CUDA_R_32F);
    if (!in_ok || !out_ok)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: type combination A=%s B=%s C=%s is not supported", g.fn,
                    type_name(g.Atype), type_name(g.Btype), type_name(g.Ctype));
    if (g.alpha == nullptr || g.beta == nullptr)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: alpha or beta is NULL", g.fn);
    emu::rt::counters().gemm_calls.fetch_add(1);
    if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;

    // Host and device pointer modes read the same way: device memory is host memory here.
    const float alpha = *static_cast<const float*>(g.alpha);
    const float beta = *static_cast<const float*>(g.beta);
    const size_t esa = element_size(g.Atype), esb = element_size(g.Btype), esc = element_size(g.Ctype);
    std::vector<float> a_tmp, b_tmp, c_tmp;
    for (int b = 0; b < g.batch; ++b) {
        const char* A = static_cast<const char*>(g.A) + b * g.stride_a * (long long)esa;
        const char* B = static_cast<const char*>(g.B) + b * g.stride_b * (long long)esb;
        char* C = static_cast<char*>(g.C) + b * g.stride_c * (long long)esc;
        float* c32 = nullptr;
        int ldc32 = g.ldc;
        if (g.Ctype == CUDA_R_32F) {
            c32 = reinterpret_cast<float*>(C);
            if (beta == 0.0f) // cuBLAS does not read C when beta == 0: NaNs in it must not propagate
                for (int j = 0; j < g.n; ++j) memset(c32 + size_t(j) * g.ldc, 0, size_t(g.m) * sizeof(float));
        } else {
            c_tmp.assign(size_t(g.m) * g.n, 0.0f);
            if (beta != 0.0f)
                for (int j = 0; j < g.n; ++j)
                    emu::blas::half_to_float(half_type(g.Ctype), C + size_t(j) * g.ldc * 2, size_t(g.m),
                                             c_tmp.data() + size_t(j) * g.m);
            c32 = c_tmp.data();
            ldc32 = g.m;
        }
        if (g.k == 0 || alpha == 0.0f) {
            // C = beta * C (BLAS may skip this; be explicit).
            for (int j = 0; j < g.n; ++j)
                for (int i = 0; i < g.m; ++i) c32[size_t(j) * ldc32 + i] *= beta;
        } else {
            int lda32 = 0, ldb32 = 0;
            const float* a32 = as_f32(A, g.Atype, a_rows, a_cols, g.lda, a_tmp, &lda32);
            const float* b32 = as_f32(B, g.Btype, b_rows, b_cols, g.ldb, b_tmp, &ldb32);
            cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, g.m, g.n, g.k,
                        alpha, a32, lda32, b32, ldb32, beta, c32, ldc32);
        }
        if (g.Ctype != CUDA_R_32F)
            for (int j = 0; j < g.n; ++j)
                emu::blas::float_to_half(half_type(g.Ctype), c32 + size_t(j) * g.m, size_t(g.m), C + size_t(j) * g.ldc * 2);
    }
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

EMU_API cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
    if (handle == nullptr) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate_v2: NULL");
    auto* h = new cublasContext;
    Handles& hs = handles();
    std::lock_guard<std::mutex> lock(hs.mu);
    hs.live.insert(h);
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    Handles& hs = handles();
    std::lock_guard<std::mutex> lock(hs.mu);
    if (hs.live.erase(handle) == 0)
        return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy_v2: invalid handle %p", (void*)handle);
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version) {
    REQUIRE_HANDLE("cublasGetVersion_v2", handle);
    if (version == nullptr) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGetVersion_v2: NULL");
    *version = 111103; // libcublas.so.11.11.3, the Debian 12 cuBLAS whose exports this surface mirrors
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, CUstream stream) {
    REQUIRE_HANDLE("cublasSetStream_v2", handle);
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, CUstream* stream) {
    REQUIRE_HANDLE("cublasGetStream_v2", handle);
    if (stream == nullptr) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGetStream_v2: NULL");
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
    REQUIRE_HANDLE("cublasSetWorkspace_v2", handle);
    if (workspace == nullptr && bytes != 0)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetWorkspace_v2: NULL workspace of %zu bytes", bytes);
    handle->workspace = workspace;
    handle->workspace_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    REQUIRE_HANDLE("cublasSetMathMode", handle);
    const int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base < CUBLAS_DEFAULT_MATH || base > CUBLAS_TF32_TENSOR_OP_MATH)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetMathMode: mode %d", mode);
    handle->math_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
    REQUIRE_HANDLE("cublasGetMathMode", handle);
    if (mode == nullptr) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGetMathMode: NULL");
    *mode = handle->math_mode;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
    REQUIRE_HANDLE("cublasSetPointerMode_v2", handle);
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetPointerMode_v2: mode %d", mode);
    handle->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t* mode) {
    REQUIRE_HANDLE("cublasGetPointerMode_v2", handle);
    if (mode == nullptr) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasGetPointerMode_v2: NULL");
    *mode = handle->pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}

EMU_API cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                    int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
                                    const void* B, cudaDataType Btype, int ldb, const void* beta, void* C,
                                    cudaDataType Ctype, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t /*algo*/) {
    return run_gemm(handle, Gemm{"cublasGemmEx", transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0,
                                 beta, C, Ctype, ldc, 0, 1, compute});
}

EMU_API cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                                  cublasOperation_t transb, int m, int n, int k, const void* alpha,
                                                  const void* A, cudaDataType Atype, int lda, long long stride_a,
                                                  const void* B, cudaDataType Btype, int ldb, long long stride_b,
                                                  const void* beta, void* C, cudaDataType Ctype, int ldc,
                                                  long long stride_c, int batch_count, cublasComputeType_t compute,
                                                  cublasGemmAlgo_t /*algo*/) {
    return run_gemm(handle, Gemm{"cublasGemmStridedBatchedEx", transa, transb, m, n, k, alpha, A, Atype, lda, stride_a,
                                 B, Btype, ldb, stride_b, beta, C, Ctype, ldc, stride_c, batch_count, compute});
}

EMU_API cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                      int n, int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                                      const float* beta, float* C, int ldc) {
    return run_gemm(handle, Gemm{"cublasSgemm_v2", transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B, CUDA_R_32F,
                                 ldb, 0, beta, C, CUDA_R_32F, ldc, 0, 1, CUBLAS_COMPUTE_32F});
}

namespace {
struct StatusText {
    cublasStatus_t code;
    const char* name;
    const char* text;
};
constexpr StatusText kStatuses[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "success"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED", "the library was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE", "an invalid numeric value was used as an argument"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH", "an absent device architectural feature is required"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR", "an access to GPU memory space failed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED", "the functionality requested is not supported"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR", "the functionality requested requires some license"},
};
} // namespace

EMU_API const char* cublasGetStatusName(cublasStatus_t status) {
    for (const auto& s : kStatuses)
        if (s.code == status) return s.name;
    return "CUBLAS_STATUS_UNKNOWN";
}

EMU_API const char* cublasGetStatusString(cublasStatus_t status) {
    for (const auto& s : kStatuses)
        if (s.code == status) return s.text;
    return "unknown error";
}
