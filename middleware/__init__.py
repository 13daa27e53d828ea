"""toolweave: run an LLM's batch of tool calls as a dependency graph.

Plan a batch (which call needs which, cycles, strategy), run every call the moment its
dependencies have succeeded, and get one typed result per call in the model's order.
"""

from ._cache import Cache, CacheError, CacheHit, MemoryCache, RedisCache, SQLiteCache
from ._decisions import Decider, RuleDecider
from ._durable import CallLedger, Claim, LedgerError, LedgerRecord, PostgresLedger, SQLiteLedger
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
    LedgerCallError,
    LedgerConflictError,
    RecordedError,
    SkipCall,
    ToolExecutionError,
    ToolTimeoutError,
    ToolweaveError,
    UncertainCallError,
    UnknownToolError,
    UsageError,
)
from ._hooks import CallContext, CallNext, CallRequest, Middleware
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
from ._tools import ResourceKeys, Tool, tool

__all__ = [
    "BatchResult",
    "Cache",
    "CacheError",
    "CacheHit",
    "CallContext",
    "CallError",
    "CallLedger",
    "CallNext",
    "CallRequest",
    "CallResult",
    "CallStatus",
    "CircularDependencyError",
    "Claim",
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
    "LedgerCallError",
    "LedgerConflictError",
    "LedgerError",
    "LedgerRecord",
    "MemoryCache",
    "Middleware",
    "Orchestrator",
    "PlannedCall",
    "PostgresLedger",
    "RecordedError",
    "RedisCache",
    "ResourceKeys",
    "RuleDecider",
    "SQLiteCache",
    "SQLiteLedger",
    "SkipCall",
    "Tool",
    "ToolCall",
    "ToolExecutionError",
    "ToolTimeoutError",
    "ToolweaveError",
    "UncertainCallError",
    "UnknownToolError",
    "UsageError",
    "tool",
]

__version__ = "0.1.0"
