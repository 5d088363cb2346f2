// signature.hpp -- the parameter types of a kernel function as text, for the launch-table check.
//
// Appended to each kernel source in both host builds (the CPU library and the GPU emulation
// library), so a test can compare the parameter list of the CPU branch, of the GPU branch and of
// fus/backend/signatures.py: a kernel whose branches disagree with the table fails CI.
#ifndef FUS_SIGNATURE_HPP
#define FUS_SIGNATURE_HPP

#include <string.h>

#include <type_traits>

namespace fus_sig {

// ---- type names of kernel parameters, for the launch-table check -------------------------------
template <typename T>
struct TypeName;
#define FUS_SIG_TYPENAME(T, s) \
    template <>                \
    struct TypeName<T> {       \
        static constexpr const char* value = s; \
    };
FUS_SIG_TYPENAME(float, "float32")
FUS_SIG_TYPENAME(double, "float64")
FUS_SIG_TYPENAME(int, "int32")
FUS_SIG_TYPENAME(unsigned char, "uint8")
FUS_SIG_TYPENAME(float*, "float32*")
FUS_SIG_TYPENAME(const float*, "float32*")
FUS_SIG_TYPENAME(double*, "float64*")
FUS_SIG_TYPENAME(const double*, "float64*")
FUS_SIG_TYPENAME(int*, "int32*")
FUS_SIG_TYPENAME(const int*, "int32*")
FUS_SIG_TYPENAME(unsigned char*, "uint8*")
FUS_SIG_TYPENAME(const unsigned char*, "uint8*")
#undef FUS_SIG_TYPENAME

template <typename... A>
struct Signature {
    // "float32*,float32*,float32,int32,..." (const and restrict dropped)
    static const char* text() {
        static char buf[1024];
        if (buf[0] == 0) {
            const char* names[] = {TypeName<typename std::decay<A>::type>::value..., nullptr};
            size_t at = 0;
            for (int i = 0; names[i]; ++i) {
                size_t len = strlen(names[i]);
                if (at + len + 2 >= sizeof buf) break;
                if (i) buf[at++] = ',';
                memcpy(buf + at, names[i], len);
                at += len;
            }
            buf[at] = 0;
        }
        return buf;
    }
};

template <typename... A>
const char* signature_of(void (*)(A...)) {
    return Signature<A...>::text();
}

}  // namespace fus_sig

// Appended after a CPU kernel source: the parameter-type list of kernel `name`.
#define FUS_CPU_SIGNATURE(name)                                                                  \
    extern "C" __attribute__((visibility("default"))) const char* fus_cpu_signature_##name() {  \
        return fus_sig::signature_of(&name);                                                     \
    }

#endif  // FUS_SIGNATURE_HPP
