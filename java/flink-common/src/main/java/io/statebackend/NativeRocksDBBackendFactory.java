package io.statebackend;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.StateBackendFactory;

/**
 * {@code state.backend.type: io.statebackend.NativeRocksDBBackendFactory}, with the checkpoint URI
 * and incremental checkpoints from Flink's options ({@code state.checkpoints.dir} and {@code
 * state.backend.incremental} on Flink 1.20, {@code execution.checkpointing.dir} and {@code
 * execution.checkpointing.incremental} on 2.x).
 */
public class NativeRocksDBBackendFactory implements StateBackendFactory<NativeRocksDBBackend> {
    @Override
    public NativeRocksDBBackend createFromConfig(ReadableConfig config, ClassLoader classLoader) {
        return new NativeRocksDBBackend(
                        NativeFsBackendFactory.requireDirectory(config, "NativeRocksDBBackend"),
                        config.get(CheckpointingOptions.INCREMENTAL_CHECKPOINTS))
                .configure(config, classLoader);
    }
}
