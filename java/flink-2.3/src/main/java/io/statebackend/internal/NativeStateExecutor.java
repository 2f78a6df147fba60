package io.statebackend.internal;

import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.api.common.state.v2.State;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.asyncprocessing.InternalAsyncFuture;
import org.apache.flink.runtime.asyncprocessing.AsyncRequestContainer;
import org.apache.flink.runtime.asyncprocessing.RecordContext;
import org.apache.flink.runtime.asyncprocessing.StateExecutor;
import org.apache.flink.runtime.asyncprocessing.StateRequest;
import org.apache.flink.runtime.state.internal.InternalAppendingState;
import org.apache.flink.runtime.state.internal.InternalKvState;
import org.apache.flink.runtime.state.internal.InternalListState;
import org.apache.flink.runtime.state.internal.InternalMapState;
import org.apache.flink.runtime.state.internal.InternalMergingState;
import org.apache.flink.runtime.state.internal.InternalValueState;
import org.apache.flink.runtime.state.v2.adaptor.CompleteStateIterator;
import org.apache.flink.util.FlinkRuntimeException;

/**
 * Runs State V2 requests against the native states, on the task thread, in the batches Flink's
 * controller forms; each request's future completes before the batch returns, and the callbacks
 * waiting on it run from the task's mailbox.
 *
 * <p>Results a callback reads later (list contents, map iterations) are iterated out before the
 * future completes: by the time a callback runs, the backend may be on another key, and a TTL
 * state's iteration still reads and writes the state (expiry, refreshed timestamps) under the
 * backend's current key.
 */
final class NativeStateExecutor<K> implements StateExecutor {
    private final NativeKeyedStateBackend<K> backend;
    private final IdentityHashMap<State, Target> targets = new IdentityHashMap<>();
    private volatile boolean shutdown;

    NativeStateExecutor(NativeKeyedStateBackend<K> backend) {
        this.backend = backend;
    }

    /**
     * Routes the requests of V2 state {@code state} to native state {@code target}; a request that
     * names no namespace is for {@code defaultNamespace}.
     */
    void register(State state, InternalKvState<K, ?, ?> target, Object defaultNamespace) {
        targets.put(state, new Target(target, defaultNamespace));
    }

    @Override
    public CompletableFuture<Void> executeBatchRequests(
            AsyncRequestContainer<StateRequest<?, ?, ?, ?>> container) {
        for (StateRequest<?, ?, ?, ?> request : ((Batch) container).requests) {
            execute(request);
        }
        return CompletableFuture.completedFuture(null);
    }

    @Override
    public AsyncRequestContainer<StateRequest<?, ?, ?, ?>> createRequestContainer() {
        return new Batch();
    }

    /** Runs a synchronous call's request: a failure is thrown to the caller, as in V1. */
    @Override
    @SuppressWarnings("unchecked")
    public void executeRequestSync(StateRequest<?, ?, ?, ?> request) {
        Object result;
        try {
            result = run(request);
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new FlinkRuntimeException(failure(request), e);
        }
        ((InternalAsyncFuture<Object>) request.getFuture()).complete(result);
    }

    @Override
    public boolean fullyLoaded() {
        return false;
    }

    @Override
    public void shutdown() {
        shutdown = true;
    }

    @SuppressWarnings("unchecked")
    private void execute(StateRequest<?, ?, ?, ?> request) {
        InternalAsyncFuture<Object> future = (InternalAsyncFuture<Object>) request.getFuture();
        Object result;
        try {
            result = run(request);
        } catch (Throwable t) {
            // Flink's handler fails the task with it (the future itself never completes).
            future.completeExceptionally(failure(request), t);
            return;
        }
        // Outside the try: a callback's own failure is the controller's to report, not ours.
        future.complete(result);
    }

    private static String failure(StateRequest<?, ?, ?, ?> request) {
        return "State request "
                + request.getRequestType()
                + " failed on the native keyed state backend";
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private Object run(StateRequest<?, ?, ?, ?> request) throws Exception {
        if (shutdown) {
            throw new IllegalStateException("The native state executor is shut down");
        }
        Target registered = targets.get(request.getState());
        if (registered == null) {
            throw new IllegalStateException(
                    "A request for a state this backend did not create: " + request.getState());
        }
        InternalKvState target = registered.state();
        RecordContext<K> context = (RecordContext<K>) request.getRecordContext();
        backend.setCurrentKeyAndKeyGroup(context.getKey(), context.getKeyGroup());
        Object namespace = request.getNamespace();
        target.setCurrentNamespace(namespace != null ? namespace : registered.defaultNamespace());
        Object in = request.getPayload();
        switch (request.getRequestType()) {
            case CLEAR:
                ((org.apache.flink.api.common.state.State) target).clear();
                return null;
            case VALUE_GET:
                return ((InternalValueState) target).value();
            case VALUE_UPDATE:
                ((InternalValueState) target).update(in);
                return null;
            case LIST_GET:
                return iterator(((InternalListState) target).get());
            case LIST_ADD:
                ((InternalListState) target).add(in);
                return null;
            case LIST_UPDATE:
                ((InternalListState) target).update((List) in);
                return null;
            case LIST_ADD_ALL:
                ((InternalListState) target).addAll((List) in);
                return null;
            case MAP_GET:
                return ((InternalMapState) target).get(in);
            case MAP_CONTAINS:
                return ((InternalMapState) target).contains(in);
            case MAP_PUT:
                Tuple2 entry = (Tuple2) in;
                ((InternalMapState) target).put(entry.f0, entry.f1);
                return null;
            case MAP_PUT_ALL:
                ((InternalMapState) target).putAll((Map) in);
                return null;
            case MAP_REMOVE:
                ((InternalMapState) target).remove(in);
                return null;
            case MAP_IS_EMPTY:
                return ((InternalMapState) target).isEmpty();
            case MAP_ITER:
                List<Map.Entry<Object, Object>> entries = new ArrayList<>();
                for (Object e : ((InternalMapState) target).entries()) {
                    Map.Entry<Object, Object> m = (Map.Entry<Object, Object>) e;
                    entries.add(new AbstractMap.SimpleEntry<>(m.getKey(), m.getValue()));
                }
                return new CompleteStateIterator<>(entries.isEmpty() ? null : entries);
            case MAP_ITER_KEY:
                return iterator(((InternalMapState) target).keys());
            case MAP_ITER_VALUE:
                return iterator(((InternalMapState) target).values());
            case REDUCING_GET:
            case AGGREGATING_GET:
                return ((InternalAppendingState) target).getInternal();
            case REDUCING_ADD:
            case AGGREGATING_ADD:
                // Flink's V2 merge clears a source namespace by storing null.
                if (in == null) {
                    ((org.apache.flink.api.common.state.State) target).clear();
                } else {
                    ((InternalAppendingState) target).updateInternal(in);
                }
                return null;
            case CUSTOMIZED:
                if (in instanceof NativeListStateV2.MergeNamespaces merge) {
                    ((InternalMergingState) target)
                            .mergeNamespaces(merge.target(), merge.sources());
                    return null;
                }
                throw new UnsupportedOperationException("Unknown customized request: " + in);
            default:
                throw new UnsupportedOperationException(
                        "State request " + request.getRequestType() + " is not supported");
        }
    }

    /** A copy of {@code values}: empty (none stored) as Flink's iterators show it. */
    @SuppressWarnings("unchecked")
    private static CompleteStateIterator<Object> iterator(Object values) {
        if (values == null) {
            return new CompleteStateIterator<>(null);
        }
        List<Object> copy = new ArrayList<>();
        ((Iterable<Object>) values).forEach(copy::add);
        return new CompleteStateIterator<>(copy.isEmpty() ? null : copy);
    }

    /** A native state and the namespace of requests that name none. */
    private record Target(InternalKvState<?, ?, ?> state, Object defaultNamespace) {}

    /** The requests of one batch, in the order the controller gave them. */
    private static final class Batch implements AsyncRequestContainer<StateRequest<?, ?, ?, ?>> {
        final List<StateRequest<?, ?, ?, ?>> requests = new ArrayList<>();

        @Override
        public void offer(StateRequest<?, ?, ?, ?> request) {
            requests.add(request);
        }

        @Override
        public boolean isEmpty() {
            return requests.isEmpty();
        }
    }
}
