package io.statebackend.internal;

import org.apache.flink.runtime.state.AsyncKeyedStateBackend;
import org.apache.flink.runtime.state.StateBackend;

/**
 * What a state backend adds on Flink 2.x: State V2's asynchronous keyed backend, {@link
 * NativeAsyncKeyedStateBackend} over the backend's own keyed backend. Jobs get it when {@link
 * #isAsyncKeyedBackendEnabled()}; otherwise Flink wraps the synchronous keyed backend in its
 * adaptor, which is faster.
 */
public interface FlinkLineStateBackend extends StateBackend {

    /** Whether State V2 jobs get {@link NativeAsyncKeyedStateBackend}. */
    boolean isAsyncKeyedBackendEnabled();

    @Override
    default <K> AsyncKeyedStateBackend<K> createAsyncKeyedStateBackend(
            KeyedStateBackendParameters<K> parameters) throws Exception {
        return new NativeAsyncKeyedStateBackend<>(
                (NativeKeyedStateBackend<K>) createKeyedStateBackend(parameters));
    }

    @Override
    default boolean supportsAsyncKeyedStateBackend() {
        return isAsyncKeyedBackendEnabled();
    }
}
