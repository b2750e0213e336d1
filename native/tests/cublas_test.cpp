// The cuBLAS surface (libcublas_emu.so) against a naive column-major loop: every transpose
// combination, odd sizes, padded leading dimensions, alpha/beta != 1/0, each input/output type,
// with guard bytes around every matrix that must stay untouched.
#include <gmock/gmock.h>

#include <cmath>
#include <cstring>
#include <random>

#include "emu_cublas.h"
#include "test_util.h"

using namespace emu_test;
using ::testing::HasSubstr;

namespace {

size_t type_size(int t) { return t == CUDA_R_32F ? 4 : 2; }

float decode(int t, const unsigned char* p) {
    if (t == CUDA_R_32F) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    if (t == CUDA_R_16BF) {
        const uint32_t u = uint32_t(h) << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    _Float16 x;
    memcpy(&x, &h, 2);
    return static_cast<float>(x);
}

// Only used for values exactly representable in every type (multiples of 1/4 below 64).
void encode(int t, float v, unsigned char* p) {
    if (t == CUDA_R_32F) {
        memcpy(p, &v, 4);
    } else if (t == CUDA_R_16BF) {
        uint32_t u;
        memcpy(&u, &v, 4);
        const uint16_t h = static_cast<uint16_t>(u >> 16);
        memcpy(p, &h, 2);
    } else {
        const _Float16 x = static_cast<_Float16>(v);
        memcpy(p, &x, 2);
    }
}

const unsigned char kGuard = 0x5c;

// A column-major matrix with leading dimension ld inside a device buffer full of guard bytes,
// including a gap before it.
struct Matrix {
    int type, rows, cols, ld, batch;
    long long stride; // elements
    size_t offset;    // bytes of guard before the first element
    std::vector<unsigned char> host;
    size_t bytes() const { return host.size(); }
    size_t at(int b, int r, int c) const {
        return offset + (size_t(b) * size_t(stride) + size_t(c) * ld + r) * type_size(type);
    }
};

Matrix make_matrix(int type, int rows, int cols, int ld, int batch, long long stride, std::mt19937& rng) {
    Matrix m{type, rows, cols, ld, batch, stride, 48, {}};
    const size_t elems = size_t(batch - 1) * size_t(stride) + size_t(ld) * std::max(cols, 1) + 7;
    m.host.assign(m.offset + elems * type_size(type) + 48, kGuard);
    std::uniform_int_distribution<int> d(-16, 16);
    for (int b = 0; b < batch; ++b)
        for (int c = 0; c < cols; ++c)
            for (int r = 0; r < rows; ++r) encode(type, d(rng) / 4.0f, &m.host[m.at(b, r, c)]);
    return m;
}

struct Case {
    int in_type, out_type;
};

class CublasTest : public EmuTest {
protected:
    void SetUp() override {
        EmuTest::SetUp();
        ASSERT_EQ(cublasCreate_v2(&handle_), CUBLAS_STATUS_SUCCESS);
        ASSERT_EQ(cublasSetWorkspace_v2(handle_, nullptr, 0), CUBLAS_STATUS_SUCCESS);
        ASSERT_EQ(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
    }
    void TearDown() override {
        cublasDestroy_v2(handle_);
        EmuTest::TearDown();
    }

    // Runs one (possibly batched) GEMM and checks every element and every guard byte.
    void check(bool batched, int transa, int transb, int m, int n, int k, float alpha, float beta, Case tc,
               bool zero_stride_b = false) {
        SCOPED_TRACE(::testing::Message() << (batched ? "strided batched" : "GemmEx") << " op(" << transa << ","
                                          << transb << ") m=" << m << " n=" << n << " k=" << k << " alpha=" << alpha
                                          << " beta=" << beta << " types " << tc.in_type << "->" << tc.out_type);
        std::mt19937 rng(m * 131 + n * 17 + k + transa * 7 + transb * 3);
        const int batch = batched ? 3 : 1;
        const int a_rows = transa ? k : m, a_cols = transa ? m : k;
        const int b_rows = transb ? n : k, b_cols = transb ? k : n;
        const int lda = a_rows + 3, ldb = b_rows + 2, ldc = m + 1;
        const long long sa = (long long)lda * a_cols + 5, sb = zero_stride_b ? 0 : (long long)ldb * b_cols + 3,
                        sc = (long long)ldc * n + 4;
        Matrix A = make_matrix(tc.in_type, a_rows, a_cols, lda, batch, sa, rng);
        Matrix B = make_matrix(tc.in_type, b_rows, b_cols, ldb, zero_stride_b ? 1 : batch, sb, rng);
        Matrix C = make_matrix(tc.out_type, m, n, ldc, batch, sc, rng);
        if (beta == 0.0f) // cuBLAS must not read C: NaNs there may not leak into the result
            for (int b = 0; b < batch; ++b)
                for (int c = 0; c < n; ++c)
                    for (int r = 0; r < m; ++r) memset(&C.host[C.at(b, r, c)], 0xff, type_size(C.type));

        DeviceBuffer<unsigned char> dA(A.host), dB(B.host), dC(C.host);
        const auto ptr = [](const DeviceBuffer<unsigned char>& d, const Matrix& mat) {
            return reinterpret_cast<void*>(d.ptr() + mat.offset);
        };
        cublasStatus_t st;
        if (batched)
            st = cublasGemmStridedBatchedEx(handle_, transa, transb, m, n, k, &alpha, ptr(dA, A), tc.in_type, lda, sa,
                                            ptr(dB, B), tc.in_type, ldb, sb, &beta, ptr(dC, C), tc.out_type, ldc, sc,
                                            batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        else
            st = cublasGemmEx(handle_, transa, transb, m, n, k, &alpha, ptr(dA, A), tc.in_type, lda, ptr(dB, B),
                              tc.in_type, ldb, &beta, ptr(dC, C), tc.out_type, ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT);
        ASSERT_EQ(st, CUBLAS_STATUS_SUCCESS) << emu_last_error();
        const auto out = dC.download();

        // op(X)[i][j] of a stored matrix.
        const auto a = [&](int b, int i, int l) {
            return (double)decode(A.type, &A.host[transa ? A.at(b, l, i) : A.at(b, i, l)]);
        };
        const int bb = zero_stride_b ? 0 : 1;
        const auto bv = [&](int b, int l, int j) {
            return (double)decode(B.type, &B.host[transb ? B.at(b * bb, j, l) : B.at(b * bb, l, j)]);
        };
        const double rtol = tc.out_type == CUDA_R_16BF ? std::ldexp(1.0, -8)
                            : tc.out_type == CUDA_R_16F ? std::ldexp(1.0, -11)
                                                        : 1e-6;
        std::vector<bool> is_element(out.size(), false);
        int bad = 0;
        for (int b = 0; b < batch; ++b)
            for (int j = 0; j < n; ++j)
                for (int i = 0; i < m; ++i) {
                    double acc = 0;
                    for (int l = 0; l < k; ++l) acc += a(b, i, l) * bv(b, l, j);
                    const size_t pos = C.at(b, i, j);
                    const double c0 = beta == 0.0f ? 0.0 : decode(C.type, &C.host[pos]);
                    const double want = alpha * acc + beta * c0;
                    const double got = decode(C.type, &out[pos]);
                    for (size_t q = 0; q < type_size(C.type); ++q) is_element[pos + q] = true;
                    if (!(std::fabs(got - want) <= rtol * std::fabs(want) + 1e-6) && ++bad <= 5)
                        ADD_FAILURE() << "C[" << b << "](" << i << "," << j << ") = " << got << ", want " << want;
                }
        size_t touched = 0;
        for (size_t q = 0; q < out.size(); ++q) touched += !is_element[q] && out[q] != kGuard;
        EXPECT_EQ(touched, 0u) << "bytes outside the m x n windows of C were written";
    }

    cublasHandle_t handle_ = nullptr;
};

const Case kCases[] = {
    {CUDA_R_32F, CUDA_R_32F}, {CUDA_R_16F, CUDA_R_16F}, {CUDA_R_16F, CUDA_R_32F},
    {CUDA_R_16BF, CUDA_R_16BF}, {CUDA_R_16BF, CUDA_R_32F},
};
const int kShapes[][3] = {{5, 7, 11}, {13, 3, 17}, {1, 1, 1}, {8, 16, 4}, {3, 2, 0}};

TEST_F(CublasTest, GemmExMatchesNaiveLoop) {
    emu_reset_counters();
    int calls = 0;
    for (const Case& tc : kCases)
        for (int ta : {CUBLAS_OP_N, CUBLAS_OP_T})
            for (int tb : {CUBLAS_OP_N, CUBLAS_OP_T})
                for (const auto& s : kShapes)
                    for (auto [alpha, beta] : {std::pair{1.5f, -0.75f}, std::pair{1.0f, 0.0f}}) {
                        check(false, ta, tb, s[0], s[1], s[2], alpha, beta, tc);
                        ++calls;
                        if (HasFatalFailure()) return;
                    }
    emu_counters c{};
    emu_get_counters(&c);
    EXPECT_EQ(c.gemm_calls, static_cast<uint64_t>(calls));
}

TEST_F(CublasTest, StridedBatchedMatchesNaiveLoop) {
    for (const Case& tc : kCases)
        for (int ta : {CUBLAS_OP_N, CUBLAS_OP_T})
            for (int tb : {CUBLAS_OP_N, CUBLAS_OP_T})
                for (const auto& s : kShapes) {
                    check(true, ta, tb, s[0], s[1], s[2], 0.5f, 2.0f, tc);
                    check(true, ta, tb, s[0], s[1], s[2], -1.0f, 0.0f, tc, /*zero_stride_b=*/true);
                    if (HasFatalFailure()) return;
                }
}

TEST_F(CublasTest, ConjugateTransposeOfRealDataIsTranspose) {
    check(false, CUBLAS_OP_C, CUBLAS_OP_C, 6, 5, 9, 1.25f, 0.5f, {CUDA_R_32F, CUDA_R_32F});
}

TEST_F(CublasTest, RowMajorLinearLayerIdiom) {
    // Y[tokens, out] = X[tokens, in] . W[out, in]^T  is  GemmEx(T, N, m=out, n=tokens, k=in, W, in, X, in, Y, out).
    const int tokens = 3, in = 4, out = 2;
    std::vector<float> X = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, W = {1, 0, 0, 1, 0, 1, 1, 0};
    DeviceBuffer<float> dX(X), dW(W), dY(tokens * out);
    const float alpha = 1, beta = 0;
    ASSERT_EQ(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, out, tokens, in, &alpha,
                           reinterpret_cast<void*>(dW.ptr()), CUDA_R_32F, in, reinterpret_cast<void*>(dX.ptr()),
                           CUDA_R_32F, in, &beta, reinterpret_cast<void*>(dY.ptr()), CUDA_R_32F, out,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(dY.download(), (std::vector<float>{1 + 4, 2 + 3, 5 + 8, 6 + 7, 9 + 12, 10 + 11}));
}

TEST_F(CublasTest, InvalidArgumentsAreRejected) {
    DeviceBuffer<float> d(64);
    void* p = reinterpret_cast<void*>(d.ptr());
    const float one = 1, zero = 0;
    auto gemm = [&](cublasHandle_t h, int ta, int m, int lda, int at, int bt, int ct, int compute) {
        return cublasGemmEx(h, ta, CUBLAS_OP_N, m, 2, 2, &one, p, at, lda, p, bt, 2, &zero, p, ct, 4, compute,
                            CUBLAS_GEMM_DEFAULT);
    };
    EXPECT_EQ(gemm(handle_, CUBLAS_OP_N, 4, 3, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F),
              CUBLAS_STATUS_INVALID_VALUE);
    EXPECT_THAT(std::string(emu_last_error()), HasSubstr("lda=3 needs >= 4"));
    EXPECT_EQ(gemm(handle_, 7, 4, 4, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F), CUBLAS_STATUS_INVALID_VALUE);
    EXPECT_EQ(gemm(handle_, CUBLAS_OP_N, -1, 4, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F),
              CUBLAS_STATUS_INVALID_VALUE);
    EXPECT_EQ(gemm(handle_, CUBLAS_OP_N, 4, 4, CUDA_R_16F, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F),
              CUBLAS_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(gemm(handle_, CUBLAS_OP_N, 4, 4, CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16F, CUBLAS_COMPUTE_32F),
              CUBLAS_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(gemm(handle_, CUBLAS_OP_N, 4, 4, CUDA_R_32F, CUDA_R_32F, CUDA_R_16F, CUBLAS_COMPUTE_32F),
              CUBLAS_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(gemm(handle_, CUBLAS_OP_N, 4, 4, CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_16F),
              CUBLAS_STATUS_NOT_SUPPORTED);
    EXPECT_EQ(gemm(reinterpret_cast<cublasHandle_t>(d.ptr()), CUBLAS_OP_N, 4, 4, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F,
                   CUBLAS_COMPUTE_32F),
              CUBLAS_STATUS_NOT_INITIALIZED);
    EXPECT_EQ(gemm(handle_, CUBLAS_OP_N, 4, 4, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED");
}

TEST_F(CublasTest, HandleSettings) {
    CUstream s = nullptr, got = reinterpret_cast<CUstream>(1);
    CU_ASSERT(cuStreamCreate(&s, 0));
    EXPECT_EQ(cublasSetStream_v2(handle_, s), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasGetStream_v2(handle_, &got), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(got, s);
    int mode = -1;
    EXPECT_EQ(cublasSetMathMode(handle_, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasGetMathMode(handle_, &mode), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(mode, CUBLAS_TF32_TENSOR_OP_MATH);
    EXPECT_EQ(cublasSetPointerMode_v2(handle_, CUBLAS_POINTER_MODE_DEVICE), CUBLAS_STATUS_SUCCESS);
    // Device pointer mode: alpha and beta live in device memory (which the emulator can read).
    DeviceBuffer<float> scalars(std::vector<float>{2.0f, 0.0f});
    DeviceBuffer<float> a(std::vector<float>{1, 2, 3, 4}), c(4);
    const float* dalpha = reinterpret_cast<const float*>(scalars.ptr());
    EXPECT_EQ(cublasSgemm_v2(handle_, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, dalpha, reinterpret_cast<const float*>(a.ptr()),
                             2, reinterpret_cast<const float*>(a.ptr()), 2, dalpha + 1, reinterpret_cast<float*>(c.ptr()), 2),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(c.download(), (std::vector<float>{14, 20, 30, 44}));
    int version = 0;
    EXPECT_EQ(cublasGetVersion_v2(handle_, &version), CUBLAS_STATUS_SUCCESS);
    EXPECT_GT(version, 0);
    CU_ASSERT(cuStreamDestroy_v2(s));
}

} // namespace
