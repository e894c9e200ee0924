{#- The users' item interactions, each with the interactions before it: what the recall's samples and its users'
    latest histories are read from.

    An interaction is a click or a page view of an item; a click and the page view it opened (same request and
    item) are one interaction, with the page view's actions. Each interaction's history is the user's previous
    `recall_history` interactions, oldest first (ordered by time, then interaction key: one at the same millisecond
    counts as before when its key sorts first), read from `recall_history_days` days before the first train day, so
    every click, the earliest included, can reach that far back. `recent_items` is the same window moved one on:
    the last `recall_history` interactions through this one. -#}

with

events as (

    select * from {{ ref('stg_warehouse__interaction_events') }}
    where ds between {{ edgerec.ds_minus(var('train_days') + var('recall_history_days')) }} and {{ edgerec.ds_var() }}

),

interactions as (

    select
        user_id,
        session_key,
        item_id,
        coalesce(request_id, event_id) as interaction_key,
        min(ts) as ts,
        min(ds) as ds,
        max(case when event_type = 'click' then 1 else 0 end) as is_click,
        max(case when cart then 1 else 0 end) as cart,
        max(case when buy then 1 else 0 end) as buy

    from events
    group by user_id, session_key, item_id, coalesce(request_id, event_id)

),

final as (

    select
        *,
        {{ edgerec.preceding_list('item_id', 'user_id', 'ts, interaction_key, item_id', var('recall_history')) }}
            as history_items,
        {{ edgerec.preceding_list('item_id', 'user_id', 'ts, interaction_key, item_id', var('recall_history') - 1,
                                  through_current=true) }} as recent_items,
        lag(ts) over (partition by user_id order by ts, interaction_key, item_id) as last_history_ts,
        row_number() over (partition by user_id, session_key order by ts, interaction_key, item_id) - 1
            as session_interactions_before,
        row_number() over (partition by user_id order by ts desc, interaction_key desc, item_id desc) as recency

    from interactions

)

select * from final
