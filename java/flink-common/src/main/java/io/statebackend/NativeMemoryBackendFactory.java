package io.statebackend;

import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.StateBackendFactory;

/** {@code state.backend.type: io.statebackend.NativeMemoryBackendFactory}. */
public class NativeMemoryBackendFactory implements StateBackendFactory<NativeMemoryBackend> {
    @Override
    public NativeMemoryBackend createFromConfig(ReadableConfig config, ClassLoader classLoader) {
        return new NativeMemoryBackend().configure(config, classLoader);
    }
}
