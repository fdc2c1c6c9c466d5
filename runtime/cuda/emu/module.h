/* Turns kernels compiled with runtime/cuda/emu/shim.h into a module the
 * emulator can load: after the kernel source, one NR_EMU_KERNEL(name) per
 * kernel and one NR_EMU_MODULE() per shared object.
 *
 * NR_EMU_KERNEL(nr_copy) exports
 *   extern "C" void nr_copy__emu(void **args);
 *       runs one thread of the kernel: args[i] points at the i-th argument's
 *       value, as cuLaunchKernel takes them; each thread copies them into its
 *       own parameters, as on a GPU;
 *   extern "C" nr_emu_params nr_copy__emu_params(void);
 *       the number and sizes of the parameters, so that graph capture can
 *       copy the argument values.
 * Both come from the kernel's function type (a variadic template over its
 * parameters), so nothing parses the source.
 *
 * NR_EMU_MODULE() exports nr_emu_module_bind, through which the emulator
 * hands the module its threadIdx/blockIdx/... state when it loads it. */
#ifndef NR_CUDA_EMU_MODULE_H
#define NR_CUDA_EMU_MODULE_H
#include "shim.h"
#include <cstddef>
#include <type_traits>
#include <utility>

struct nr_emu_params {
    int count;
    const size_t *sizes; /* count entries */
};

namespace nr_emu_detail {
template <typename T> using value_t = std::remove_cv_t<std::remove_reference_t<T>>;

template <typename... A, std::size_t... I>
inline void call(void (*kernel)(A...), void **args, std::index_sequence<I...>)
{
    (void)args; /* a kernel without parameters */
    kernel(*static_cast<value_t<A> *>(args[I])...);
}

template <typename... A> inline void unpack(void (*kernel)(A...), void **args)
{
    call(kernel, args, std::index_sequence_for<A...>{});
}

template <typename... A> inline nr_emu_params params(void (*)(A...))
{
    static const size_t sizes[sizeof...(A) + 1] = { sizeof(value_t<A>)..., 0 };
    return { (int)sizeof...(A), sizes };
}
} // namespace nr_emu_detail

#define NR_EMU_EXPORT extern "C" __attribute__((visibility("default")))

#define NR_EMU_KERNEL(name)                                                                                   \
    NR_EMU_EXPORT void name##__emu(void **args) { nr_emu_detail::unpack(name, args); }                      \
    NR_EMU_EXPORT nr_emu_params name##__emu_params(void) { return nr_emu_detail::params(name); }

/* abi must be NR_EMU_BUILTINS_ABI: a module built with another shim is refused. */
#define NR_EMU_MODULE()                                                                                       \
    NR_EMU_EXPORT int nr_emu_module_bind(nr_emu_builtins *builtins, int abi)                                  \
    {                                                                                                         \
        if (abi != NR_EMU_BUILTINS_ABI) return -1;                                                            \
        nr_emu_state = builtins;                                                                              \
        return 0;                                                                                             \
    }

#endif
