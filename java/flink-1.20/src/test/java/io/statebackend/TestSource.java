package io.statebackend;

import org.apache.flink.streaming.api.functions.source.SourceFunction;

/** The tests' sources: Flink 1.20's {@code SourceFunction}, by one name on every line. */
public interface TestSource<T> extends SourceFunction<T> {}
