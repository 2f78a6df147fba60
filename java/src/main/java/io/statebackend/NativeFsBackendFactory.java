package io.statebackend;

import org.apache.flink.configuration.IllegalConfigurationException;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.runtime.state.StateBackendFactory;

/**
 * {@code state.backend.type: io.statebackend.NativeFsBackendFactory}, with the checkpoint URI from
 * {@code state.checkpoints.dir} (or {@code execution.checkpointing.dir}, or the classic {@code
 * state.backend.fs.checkpointdir}).
 */
public class NativeFsBackendFactory implements StateBackendFactory<NativeFsBackend> {
    @Override
    public NativeFsBackend createFromConfig(ReadableConfig config, ClassLoader classLoader) {
        return new NativeFsBackend(requireDirectory(config, "NativeFsBackend"))
                .configure(config, classLoader);
    }

    static String requireDirectory(ReadableConfig config, String backend) {
        String dir = AbstractNativeBackend.configuredCheckpointDirectory(config);
        if (dir == null || dir.trim().isEmpty()) {
            throw new IllegalConfigurationException(
                    backend
                            + " needs a checkpoint directory: set state.checkpoints.dir (or"
                            + " state.backend.fs.checkpointdir), e.g. file:///data/flink/checkpoints");
        }
        return dir;
    }
}
