// T2_SANITIZER_OWNS_MALLOC: defined when this translation unit is built with AddressSanitizer or
// ThreadSanitizer, whose allocator replaces glibc's malloc (so malloc_trim and mallinfo2 see
// nothing). GCC says so with __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__; clang 14 defines
// neither and answers __has_feature instead.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T2_SANITIZER_OWNS_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T2_SANITIZER_OWNS_MALLOC 1
#endif
#endif
