#pragma once
// QGNN_API marks the symbols the shared library exports (built with -fvisibility=hidden).
#define QGNN_API __attribute__((visibility("default")))
