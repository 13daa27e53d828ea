"""toolweave: run an LLM's batch of tool calls as a dependency graph.

Plan a batch (which call needs which, cycles, strategy), run every call the moment its
dependencies have succeeded, and get one typed result per call in the model's order.
"""

from ._decisions import Decider, RuleDecider
from ._errors import (
    CallError,
    CircularDependencyError,
    DeciderError,
    DeciderUnavailableError,
    DecisionRefusedError,
    ErrorType,
    InvalidArgumentsError,
    InvalidBatchError,
    InvalidCallError,
    InvalidDecisionError,
    InvalidReferenceError,
    SkipCall,
    ToolExecutionError,
    ToolTimeoutError,
    ToolweaveError,
    UnknownToolError,
    UsageError,
)
from ._hooks import CallNext, CallRequest, Middleware
from ._llm_decider import IntermediateLLMDecider
from ._models import (
    BatchResult,
    CallResult,
    CallStatus,
    Decision,
    DecisionContext,
    DecisionRecord,
    ExecutionPlan,
    FinishedCall,
    PlannedCall,
    ToolCall,
)
from ._orchestrator import Orchestrator
from ._tools import Tool, tool

__all__ = [
    "BatchResult",
    "CallError",
    "CallNext",
    "CallRequest",
    "CallResult",
    "CallStatus",
    "CircularDependencyError",
    "Decider",
    "DeciderError",
    "DeciderUnavailableError",
    "Decision",
    "DecisionContext",
    "DecisionRecord",
    "DecisionRefusedError",
    "ErrorType",
    "ExecutionPlan",
    "FinishedCall",
    "IntermediateLLMDecider",
    "InvalidArgumentsError",
    "InvalidBatchError",
    "InvalidCallError",
    "InvalidDecisionError",
    "InvalidReferenceError",
    "Middleware",
    "Orchestrator",
    "PlannedCall",
    "RuleDecider",
    "SkipCall",
    "Tool",
    "ToolCall",
    "ToolExecutionError",
    "ToolTimeoutError",
    "ToolweaveError",
    "UnknownToolError",
    "UsageError",
    "tool",
]

__version__ = "0.1.0"
