// All differentiable ops, one header per family.
#pragma once
#include "core/autograd.h"
#include "core/ops_elementwise.h"
#include "core/ops_reduce.h"
#include "core/ops_loss.h"
#include "core/ops_resize.h"
#include "core/ops_matmul.h"
#include "core/ops_index.h"
#include "core/ops_norm.h"
#include "core/ops_pool.h"
#include "core/ops_conv.h"
