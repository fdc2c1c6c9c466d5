#!/bin/sh
# The CPU kernels' fallback: test_rt_ops's checks again with the direct
# convolutions off (NETC_CPU_KERNELS=generic), so that the im2col + BLAS
# path that CPUs without AVX-512 run stays tested on machines that have it.
NETC_CPU_KERNELS=generic exec "${TEST_RT_OPS:?set by make check}"
