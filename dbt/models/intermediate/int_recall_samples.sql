{#- The recall model's samples: one per item interaction, with the user's interactions before it.

    An interaction is a click or a page view of an item; a click and the page view it opened (same request and
    item) are one interaction, with the page view's actions. Each interaction's history is the user's previous
    `recall_history` interactions, oldest first (ordered by time, then interaction key: one at the same millisecond
    counts as before when its key sorts first), read from `recall_history_days` days before the first train day, so
    every click, the earliest included, can reach that far back; and
    `session_history` says how many of the last of them are in the same session (the session-based task reads
    those alone). A click with a history is a sample: the target is its item. -#}

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

with_history as (

    select
        *,
        {{ edgerec.preceding_list('item_id', 'user_id', 'ts, interaction_key, item_id', var('recall_history')) }}
            as history_items,
        lag(ts) over (partition by user_id order by ts, interaction_key, item_id) as last_history_ts,
        row_number() over (partition by user_id, session_key order by ts, interaction_key, item_id) - 1
            as session_interactions_before

    from interactions

),

final as (

    select
        user_id,
        session_key,
        ts,
        ds,
        item_id as target_item,
        cart as target_cart,
        buy as target_buy,
        history_items,
        last_history_ts,
        {{ edgerec.list_length('history_items') }} as history_length,
        least(session_interactions_before, {{ var('recall_history') }}) as session_history,
        case when ds = {{ edgerec.ds_var() }} then 'test' else 'train' end as split

    from with_history
    where is_click = 1
      and ds >= {{ edgerec.ds_minus(var('train_days')) }}
      and {{ edgerec.list_length('history_items') }} > 0

)

select * from final
